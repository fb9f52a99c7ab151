"""A throw-away PostgreSQL for the store tests, driven through `scripts/postgres.sh`.

The script does the work (install when missing and root, initdb as the postgres user, start on a
free loopback port); this class adds what tests need on top: a fresh database per test, and
stopping and restarting the server mid-test.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"
# The first start may run apt-get install postgresql on a bare machine; kept under
# pytest-timeout's 600 s so that a stuck install fails with the script's own message.
START_TIMEOUT_S = 540


class PostgresServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = ""
        self._database_numbers = itertools.count(1)

    def start(self) -> str:
        """Start (or restart, same port and data) the server; returns its SQLAlchemy URL."""
        done = subprocess.run(
            ["bash", str(SCRIPT), "start", str(self.root)],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{SCRIPT.name} start failed:\n{done.stderr}")
        self.url = done.stdout.strip().splitlines()[-1]
        return self.url

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.root)], check=True, timeout=120)

    def create_database(self, prefix: str = "test") -> str:
        """A new empty database on the server; returns its SQLAlchemy URL."""
        name = f"{prefix}_{next(self._database_numbers)}"
        url = make_url(self.url)
        with psycopg.connect(
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            dbname="postgres",
            autocommit=True,  # CREATE DATABASE cannot run inside a transaction
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return url.set(database=name).render_as_string(hide_password=False)
