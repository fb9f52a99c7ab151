"""Store backends for the experiments tests: SQLite always, and PostgreSQL (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.store import DecisionStore
from tests.experiments.postgres_server import PostgresServer

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of each backend: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'curator.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.fixture
def store(store_url: str) -> Iterator[DecisionStore]:
    """An empty store with its schema, of each backend."""
    store = DecisionStore(store_url)
    store.create_schema()
    yield store
    store.close()
