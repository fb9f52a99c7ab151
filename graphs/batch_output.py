"""Where the batch mode's answers go: JSON Lines files, one answer per line, and their tally.

A Ray Data datasink of its own rather than `write_json`: that one writes each row as an object
of its columns (an answer would be a string inside one) through pandas, which also rounds floats
to 10 significant digits, while a line here is the very JSON text the HTTP API sends. Each
write task also counts what it wrote, so the summary needs no second pass over the output.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.data.block import Block, BlockAccessor
from ray.data.datasource import Datasink
from ray.data.datasource.datasink import WriteResult


@dataclass
class AnswerCounts:
    listings: int = 0
    images: int = 0
    actions: Counter[str] = field(default_factory=Counter)  # approve, review, reject, fix
    image_errors: Counter[str] = field(default_factory=Counter)  # by error code
    refused_listings: Counter[str] = field(default_factory=Counter)  # the API's 4xx, by code

    def add(self, answer: dict[str, Any]) -> None:
        self.listings += 1
        if "error" in answer:
            self.refused_listings[answer["error"]["code"]] += 1
            return
        for image in answer["images"]:
            self.images += 1
            if image["status"] == "error":
                self.image_errors[image["error"]["code"]] += 1
            else:
                self.actions[image["action"]] += 1

    def merge(self, other: AnswerCounts) -> None:
        self.listings += other.listings
        self.images += other.images
        self.actions.update(other.actions)
        self.image_errors.update(other.image_errors)
        self.refused_listings.update(other.refused_listings)


class ListingAnswersDatasink(Datasink[AnswerCounts]):
    """Writes the `answer` column, one JSON text per line, to `answers-NNNNN.jsonl` files (one
    per write task) in a local folder on the driver's node; with `parquet`, the same answers to
    `answers-NNNNN.parquet` beside each (graphs.batch_parquet)."""

    def __init__(self, directory: Path, parquet: bool = False) -> None:
        self.directory = directory
        self.parquet = parquet
        self.counts = AnswerCounts()  # filled on the driver once every task has written

    @property
    def supports_distributed_writes(self) -> bool:
        return False  # a local folder: write where the driver is, not on other nodes' disks

    def on_write_start(self, schema: Any = None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def write(self, blocks: Iterable[Block], ctx: Any) -> AnswerCounts:
        counts = AnswerCounts()
        # Named by the task: a retried task rewrites its own file rather than adding one.
        path = self.directory / f"answers-{ctx.task_idx:05d}.jsonl"
        texts: list[str] = []
        with path.open("w", encoding="utf-8") as out:
            for block in blocks:
                for answer in BlockAccessor.for_block(block).to_arrow().column("answer"):
                    text = answer.as_py()
                    out.write(text + "\n")
                    counts.add(json.loads(text))
                    if self.parquet:
                        texts.append(text)
        if self.parquet:
            import pyarrow.parquet as pq

            from graphs.batch_parquet import answers_table

            pq.write_table(answers_table(texts), path.with_suffix(".parquet"))
        return counts

    def on_write_complete(self, write_result: WriteResult[AnswerCounts]) -> None:
        for counts in write_result.write_returns:
            self.counts.merge(counts)
