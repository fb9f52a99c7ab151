"""A durable local outbox between the request path and the decision store.

`put_decision` / `put_outcomes` / `put_review_items` append to a SQLite file next to the process
(tens of microseconds, no network); a background thread drains the file into the `DecisionStore` in
batches and deletes rows only after the store committed them. While the database is down the
thread backs off and retries; rows wait on disk, across process restarts too. A row may reach the
store twice (a crash between the store's commit and the local delete): the store ignores ids it
already holds, so the effect is exactly once.

One outbox file per process. No Ray here: the ingress deployment wires in metrics through
`on_metric`. The drain thread also runs `housekeeping` (the review thumbnails' purge) every
`housekeeping_interval_s`, so that no replica needs a scheduler of its own.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.exc import DataError, IntegrityError

from experiments.records import DecisionRecord, OutcomeRecord
from experiments.review_records import ReviewItem

log = logging.getLogger(__name__)

DECISION = "decision"
OUTCOME = "outcome"
REVIEW_ITEM = "review_item"
_TIMESTAMP_FIELDS = {DECISION: ("created_at",), OUTCOME: ("occurred_at", "received_at"),
                     REVIEW_ITEM: ("created_at",)}
_BYTES_FIELDS = {REVIEW_ITEM: ("thumbnail", "fixed_thumbnail")}
_RECORD_TYPES: dict[str, type[Any]] = {DECISION: DecisionRecord, OUTCOME: OutcomeRecord,
                                       REVIEW_ITEM: ReviewItem}

# Names passed to `on_metric(name, amount)`.
METRIC_STORED = "outbox_rows_stored"  # rows the store committed (new or already there)
METRIC_STORE_ERRORS = "outbox_store_errors"  # failed drain attempts (each followed by a backoff)
METRIC_DEAD_LETTERS = "outbox_dead_letters"  # rows the store refused for good, kept aside
METRIC_PUT_FAILURES = "outbox_put_failures"  # rows the local file could not take (disk full)

MetricHook = Callable[[str, float], None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    error TEXT NOT NULL,
    failed_at REAL NOT NULL
);
"""


class DecisionSink(Protocol):
    """What the outbox drains into: `DecisionStore`, or a stand-in in tests."""

    def write_decisions(self, records: Sequence[DecisionRecord]) -> int: ...

    def write_outcomes(self, records: Sequence[OutcomeRecord]) -> int: ...

    def write_review_items(self, records: Sequence[ReviewItem]) -> int: ...


Record = DecisionRecord | OutcomeRecord | ReviewItem


class Outbox:
    """Durable, thread-safe queue of decisions and outcomes on their way to the store."""

    def __init__(
        self,
        path: str | Path,
        store: DecisionSink,
        *,
        flush_interval_s: float = 1.0,
        batch_size: int = 500,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        on_metric: MetricHook | None = None,
        housekeeping: Callable[[], object] | None = None,
        housekeeping_interval_s: float = 3600.0,
    ) -> None:
        self.path = Path(path)
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._on_metric = on_metric
        self._housekeeping = housekeeping
        self.housekeeping_interval_s = housekeeping_interval_s
        self._housekept_at: float | None = None  # monotonic; None: not yet in this process
        self._db = _open(self.path)
        self._lock = threading.Lock()  # one connection, shared by callers and the drainer
        self._wake = threading.Event()
        self._drained = threading.Condition()
        self._closing = False
        # Rows queued since the last drain (a previous process's leftovers count too): a full
        # batch wakes the drainer before its interval is up.
        self._undrained = self._count_pending()
        self._thread = threading.Thread(target=self._run, name="outbox-drain", daemon=True)
        self._thread.start()

    def put_decision(self, record: DecisionRecord) -> bool:
        """Queue one decision; never waits on the store. False if the local file failed."""
        return self._append(DECISION, [record])

    def put_outcomes(self, records: Sequence[OutcomeRecord]) -> bool:
        """Queue outcome events in one local transaction; never waits on the store."""
        return self._append(OUTCOME, records)

    def put_review_items(self, records: Sequence[ReviewItem]) -> bool:
        """Queue the review items of one decision in one local transaction."""
        return self._append(REVIEW_ITEM, records)

    def pending(self) -> int:
        """Rows not yet committed to the store (dead letters excluded)."""
        with self._lock:
            return self._count_pending_locked()

    def dead_letters(self) -> int:
        """Rows the store refused for good (kept in the file for inspection, never retried)."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

    def flush(self, timeout: float = 30.0) -> bool:
        """Drain now, cutting short the interval or backoff under way; True once nothing is
        pending, False if rows are still pending after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._drained:  # the drainer notifies after every attempt, good or failed
            while self.pending() > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._drained.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Drain for up to `timeout` seconds, then stop. Rows left over stay in the file."""
        if self._closing:
            return
        if timeout > 0:
            self.flush(timeout)
        self._closing = True
        self._wake.set()
        self._thread.join()
        with self._lock:
            self._db.close()

    def _append(self, kind: str, records: Sequence[Record]) -> bool:
        if not records:
            return True
        try:
            rows = [(kind, _encode(record)) for record in records]
            with self._lock:
                with self._db:  # one transaction: all of the rows or none
                    self._db.executemany("INSERT INTO pending (kind, payload) VALUES (?, ?)", rows)
                self._undrained += len(rows)
                full_batch = self._undrained >= self.batch_size
        except (sqlite3.Error, TypeError, ValueError):
            # The request must not fail because its log could not be written; say so loudly.
            log.exception("outbox %s: could not queue %d %s row(s)", self.path, len(records), kind)
            self._metric(METRIC_PUT_FAILURES, len(records))
            return False
        if full_batch:
            self._wake.set()
        return True

    def _run(self) -> None:
        delay = 0.0  # drain right away: a previous process may have left rows
        failures = 0
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            if self._closing:
                return
            try:
                self._drain()
                failures = 0
                delay = self.flush_interval_s
                self._housekeep()
            except Exception:
                failures += 1
                delay = self._backoff(failures)
                log.warning(
                    "outbox %s: store write failed (%d in a row), retrying in %.1f s",
                    self.path,
                    failures,
                    delay,
                    exc_info=failures == 1,
                )
                self._metric(METRIC_STORE_ERRORS, 1)
            with self._drained:
                self._drained.notify_all()

    def _housekeep(self) -> None:
        """Run `housekeeping` when it is due: after the first good drain, then every interval.
        Its failure is logged and retried at the next interval; it never stops the draining."""
        if self._housekeeping is None:
            return
        now = time.monotonic()
        if self._housekept_at is not None and now - self._housekept_at < (
                self.housekeeping_interval_s):
            return
        self._housekept_at = now
        try:
            self._housekeeping()
        except Exception:
            log.exception("outbox %s: housekeeping failed", self.path)

    def _backoff(self, failures: int) -> float:
        capped = min(self.retry_max_s, self.retry_initial_s * 2 ** min(failures - 1, 32))
        # Jitter: replicas that lost the same database must not all come back at once.
        return capped * random.uniform(0.5, 1.0)

    def _drain(self) -> None:
        while not self._closing:
            with self._lock:
                batch = self._db.execute(
                    "SELECT seq, kind, payload FROM pending ORDER BY seq LIMIT ?",
                    (self.batch_size,),
                ).fetchall()
            if not batch:
                return
            for kind in (DECISION, OUTCOME, REVIEW_ITEM):
                rows = [(seq, payload) for seq, row_kind, payload in batch if row_kind == kind]
                if rows:
                    self._deliver(kind, rows)

    def _deliver(self, kind: str, rows: list[tuple[int, str]]) -> None:
        """Write rows to the store, then forget them; raises (rows kept) on a store error."""
        try:
            _write(self.store, kind, [payload for _, payload in rows])
        except (IntegrityError, DataError, ValueError, TypeError, KeyError) as error:
            # Refused for what a row holds, not for the database being away: retrying the
            # batch would block everything behind it. Find the culprits one by one.
            if len(rows) > 1:
                for row in rows:
                    self._deliver(kind, [row])
                return
            self._set_aside(kind, rows[0], error)
            return
        self._forget([seq for seq, _ in rows])
        self._metric(METRIC_STORED, len(rows))

    def _set_aside(self, kind: str, row: tuple[int, str], error: Exception) -> None:
        seq, payload = row
        log.error(
            "outbox %s: the store refused %s row %d for good: %s", self.path, kind, seq, error
        )
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?)",
                (seq, kind, payload, repr(error), time.time()),
            )
            self._db.execute("DELETE FROM pending WHERE seq = ?", (seq,))
            self._undrained = max(0, self._undrained - 1)
        self._metric(METRIC_DEAD_LETTERS, 1)

    def _forget(self, seqs: list[int]) -> None:
        with self._lock, self._db:
            self._db.executemany("DELETE FROM pending WHERE seq = ?", [(seq,) for seq in seqs])
            self._undrained = max(0, self._undrained - len(seqs))

    def _count_pending(self) -> int:
        with self._lock:
            return self._count_pending_locked()

    def _count_pending_locked(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    def _metric(self, name: str, amount: float) -> None:
        if self._on_metric is None:
            return
        try:
            self._on_metric(name, amount)
        except Exception:
            log.exception("outbox metric hook failed")


class _Ranked(Protocol):
    rank: int


def replica_outbox_path(directory: Path, rank: int | _Ranked) -> Path:
    """The outbox file of the ingress replica at `rank` (Serve's `ReplicaRank`, or a plain int):
    `ingress-<n>.db`, stable across restarts so that a replica restarted in the same slot drains
    what its predecessor left. A file under the name earlier versions used, the rank object's
    repr (`ingress-rank=0 node_rank=0 local_rank=0.db`), is renamed to it, so no row left there
    is orphaned."""
    number = rank if isinstance(rank, int) else int(rank.rank)
    path = directory / f"ingress-{number}.db"
    legacy = directory / f"ingress-{rank}.db"
    if legacy != path and legacy.exists() and not path.exists():
        # SQLite's WAL and shared-memory files go with it: rows may still sit in the WAL.
        for suffix in ("-wal", "-shm", ""):
            source = legacy.with_name(legacy.name + suffix)
            if source.exists():
                source.rename(path.with_name(path.name + suffix))
        log.info("outbox: renamed %s to %s", legacy.name, path.name)
    return path


def _open(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Shared between threads under Outbox._lock; `with db:` wraps writes in one transaction.
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=5000")
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit is in the WAL file (the OS page cache) when put returns, so a
    # crashed or killed process loses nothing; only an OS crash or power cut can lose the last
    # few puts. FULL would add an fsync to every request; NORMAL keeps a put at tens of µs.
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    return db


def _encode(record: Record) -> str:
    fields = asdict(record)
    for name, value in fields.items():
        if isinstance(value, datetime):
            fields[name] = value.isoformat()
        elif isinstance(value, bytes):  # thumbnails: JSON has no bytes
            fields[name] = base64.b64encode(value).decode("ascii")
    return json.dumps(fields, separators=(",", ":"))


def _decode(kind: str, payload: str) -> Any:
    fields = json.loads(payload)
    for name in _TIMESTAMP_FIELDS[kind]:
        fields[name] = datetime.fromisoformat(fields[name])
    for name in _BYTES_FIELDS.get(kind, ()):
        if fields.get(name) is not None:
            fields[name] = base64.b64decode(fields[name])
    return _RECORD_TYPES[kind](**fields)


def _write(store: DecisionSink, kind: str, payloads: list[str]) -> None:
    records = [_decode(kind, payload) for payload in payloads]
    if kind == DECISION:
        store.write_decisions(records)
    elif kind == OUTCOME:
        store.write_outcomes(records)
    else:
        store.write_review_items(records)
