"""What differs between the store's two backends, kept out of the queries: engines and their
settings, a time type both answer alike, and a write lock.

SQLite is the embedded default (one file, WAL); PostgreSQL serves clusters where many ingress
replicas write at once.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Dialect, TypeDecorator, create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url

from experiments.records import as_utc

SQLITE_BUSY_TIMEOUT_MS = 10_000


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    SQLite keeps naive text (fixed width, so text order is time order); PostgreSQL keeps
    `timestamptz`. Either way the caller sees the same value.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = as_utc(value)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def take_write_lock(conn: Connection, key: str) -> None:
    """Serialise writers of `key` until the transaction ends; call first in the transaction.

    PostgreSQL: an advisory lock on the key, so writers of other keys go on. SQLite has one
    writer at a time anyway; BEGIN IMMEDIATE takes that lock up front, so a read followed by a
    write cannot fail halfway with "database is locked".
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_store_engine(url: str, *, pool_size: int, max_overflow: int) -> Engine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        # Few connections per process: each replica writes from one outbox thread, and the
        # server's max_connections is shared by every replica (100 by default). Pre-ping drops
        # connections that died with a server restart instead of failing the next write.
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
            pool_recycle=1800,
            pool_timeout=30,
            connect_args={"connect_timeout": 5, "options": "-c timezone=UTC"},
        )
    raise ValueError(f"unsupported store backend {backend!r}: use sqlite or postgresql")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # The busy timeout queues writers from other threads and processes instead of failing them.
    # FULL: a committed batch has already left the outbox, so it must survive a power cut;
    # batched writes make the fsync cheap.
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    _enable_wal(cursor)
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _enable_wal(cursor: Any) -> None:
    """WAL lets reports read while the outbox writes. It sticks to the file, but switching a new
    file needs a lock that SQLite does not wait for: replicas opening it together retry."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
