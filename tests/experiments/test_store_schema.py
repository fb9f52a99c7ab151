"""The store's schema on an existing database: indexes added since it was made are created when
a store opens it. Both backends."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Index, inspect

from experiments.records import Exposure
from experiments.store import DecisionStore
from experiments.store_schema import decisions
from tests.experiments.factories import T0, decision

SINCE_INDEX = "ix_decisions_experiment_created"


def decisions_indexes(store: DecisionStore) -> dict[str, list[str | None]]:
    return {
        str(index["name"]): index["column_names"]
        for index in inspect(store.engine).get_indexes("decisions")
    }


def test_an_index_added_since_a_database_was_made_is_created_when_a_store_opens_it(
    store_url: str,
) -> None:
    older = DecisionStore(store_url)
    older.create_schema()
    since_index: Index = next(index for index in decisions.indexes if index.name == SINCE_INDEX)
    with older.engine.begin() as conn:
        since_index.drop(conn)  # the database as it was made before the index existed
    older.write_decisions([decision("d1"), decision("d2", created_at=T0 + timedelta(hours=1))])
    assert SINCE_INDEX not in decisions_indexes(older)
    older.close()

    store = DecisionStore(store_url)
    store.create_schema()
    store.create_schema()  # and again, as every replica does at start-up
    assert decisions_indexes(store)[SINCE_INDEX] == ["experiment_id", "created_at"]
    assert store.exposures("exp-1", since=T0 + timedelta(minutes=30)) == [
        Exposure("control", "unit-d2", T0 + timedelta(hours=1))
    ]
    store.close()
