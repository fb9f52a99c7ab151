"""Fixtures shared across test packages: a throw-away PostgreSQL for the session."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.experiments.postgres_server import PostgresServer


def _skip_postgres_requested() -> bool:
    if os.environ.get("CURATOR_SKIP_POSTGRES") != "1":
        return False
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail("CURATOR_SKIP_POSTGRES=1 is not honoured in CI: the store must be tested")
    return True


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One server for the session; a test may stop and restart it (it must leave it running)."""
    if _skip_postgres_requested():
        pytest.skip("CURATOR_SKIP_POSTGRES=1")
    # Under /tmp, not pytest's tmp_path: as root the server runs as the postgres user, who
    # cannot enter pytest's private (0700, root-owned) base folder.
    root = Path(tempfile.mkdtemp(prefix="curator-pg-"))
    server = PostgresServer(root)
    try:
        server.start()  # fails the tests loudly when PostgreSQL is missing and not installable
        yield server
    finally:
        if server.url:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


