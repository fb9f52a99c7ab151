"""The ingress outbox's file name: one clean, stable name per replica rank."""

from __future__ import annotations

import shutil
from pathlib import Path

from ray.serve.schema import ReplicaRank

from experiments.outbox import Outbox, replica_outbox_path
from tests.experiments.factories import decision
from tests.experiments.test_outbox import UnreachableStore


def test_the_name_is_the_rank_number(tmp_path: Path) -> None:
    rank = ReplicaRank(rank=3, node_rank=0, local_rank=1)
    assert replica_outbox_path(tmp_path, rank) == tmp_path / "ingress-3.db"
    assert replica_outbox_path(tmp_path, 3) == tmp_path / "ingress-3.db"


def test_a_file_under_the_old_repr_name_is_taken_over_with_its_rows(tmp_path: Path) -> None:
    rank = ReplicaRank(rank=0, node_rank=0, local_rank=0)
    legacy = tmp_path / f"ingress-{rank}.db"
    assert " " in legacy.name  # the repr name earlier versions wrote
    # A replica killed with a decision still in SQLite's WAL: copy its files as it left them.
    crashed = Outbox(tmp_path / "crashed.db", UnreachableStore(), flush_interval_s=60)
    crashed.put_decision(decision("d-1"))
    for suffix in ("", "-wal", "-shm"):
        source = tmp_path / f"crashed.db{suffix}"
        if source.exists():
            shutil.copy(source, legacy.with_name(legacy.name + suffix))
    crashed.close(timeout=0)

    path = replica_outbox_path(tmp_path, rank)
    assert path.name == "ingress-0.db" and not legacy.exists()
    successor = Outbox(path, UnreachableStore(), flush_interval_s=60)
    try:
        assert successor.pending() == 1
    finally:
        successor.close(timeout=0)


def test_an_existing_clean_file_is_never_replaced(tmp_path: Path) -> None:
    rank = ReplicaRank(rank=1, node_rank=0, local_rank=1)
    (tmp_path / "ingress-1.db").write_bytes(b"current")
    (tmp_path / f"ingress-{rank}.db").write_bytes(b"legacy")
    assert replica_outbox_path(tmp_path, rank).read_bytes() == b"current"
