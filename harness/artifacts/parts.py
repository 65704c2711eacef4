"""Crash-safe Parquet artifacts: a run writes small complete part files as it goes, and
compacts them into the final ``<name>.parquet`` at the end (or later, after a crash).

A Parquet file is only readable once its footer is written, so one long-lived writer would lose
everything on SIGKILL; complete parts lose at most the last flush interval.
"""

from __future__ import annotations

import functools
import io
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import ArtifactError


def parts_dir(final: Path) -> Path:
    return final.with_name(final.name + ".parts")


class PartWriter:
    """Appends column batches to ``<final>.parts/part-NNNNNN.parquet``."""

    def __init__(self, final: Path, schema: pa.Schema, prefix: str = "") -> None:
        self.final = final
        self.schema = schema
        self.prefix = prefix  # load-generator workers write their own shards side by side
        self.dir = parts_dir(final)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._next = len(list(self.dir.glob(f"{prefix}part-*.parquet")))
        self.rows_written = 0
        _warm_up(schema)

    def write(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Write one complete part; an empty batch writes nothing."""
        table = pa.table({f.name: _array(columns[f.name], f.type) for f in self.schema},
                         schema=self.schema)
        if table.num_rows == 0:
            return
        path = self.dir / f"{self.prefix}part-{self._next:06d}.parquet"
        tmp = path.with_suffix(".tmp")
        # Parts are rewritten by compact(): no statistics or dictionaries here, which cost ~0.8
        # of the ~2.5 ms a part takes to write, whatever its size (and make it no smaller).
        pq.write_table(table, tmp, compression="zstd", write_statistics=False,
                       use_dictionary=False)  # fmt: skip
        tmp.replace(path)
        self._next += 1
        self.rows_written += table.num_rows

    def close(self) -> int:
        return compact(self.final, self.schema)


def _array(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    """``pa.array(values, type=kind)``, without converting value by value a column that holds
    one value throughout (most of a request batch: method, status, phase, variant, replica,
    sizes, and every telemetry column a target does not send). Converting a Python value costs
    Arrow ~150-300 instructions; ``list.count`` compares by identity first, a few per value.
    A NaN never equals itself, so a column of NaNs takes the general path."""
    if values and isinstance(values, list):
        first = values[0]
        if values.count(first) == len(values) and (first is None or first == first):
            if first is None:
                return pa.nulls(len(values), type=kind)
            return pa.repeat(pa.scalar(first, type=kind), len(values))
    return pa.array(values, type=kind)


@functools.cache
def _warm_up(schema: pa.Schema) -> None:
    """The first Parquet write of a process costs ~0.7 s (codec and writer set-up). Pay it
    before the run starts, not on the load generator's loop in the middle of a run."""
    pq.write_table(schema.empty_table(), io.BytesIO(), compression="zstd")
    pa.table({f.name: pa.array([None], type=f.type) for f in schema}).to_pylist()


def compact(final: Path, schema: pa.Schema) -> int:
    """Merge parts (if any) into ``final``; returns the row count. Idempotent."""
    pdir = parts_dir(final)
    parts = sorted(pdir.glob("*part-*.parquet")) if pdir.is_dir() else []
    if not parts and final.exists():
        return int(pq.ParquetFile(final).metadata.num_rows)
    sources = ([final] if final.exists() else []) + parts
    tmp = final.with_name(f".{final.name}.tmp")
    rows = 0
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for src in sources:
            try:
                table = pq.read_table(src).cast(schema)
            except (OSError, pa.ArrowException) as exc:
                raise ArtifactError(f"{src}: unreadable Parquet part ({exc})") from exc
            writer.write_table(table, row_group_size=256_000)
            rows += table.num_rows
    tmp.replace(final)
    shutil.rmtree(pdir, ignore_errors=True)
    return rows
