"""Parquet parts: a column holding one value throughout is built without per-value conversion,
and gives the same table as ``pa.array``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.artifacts.parts import PartWriter, _array

CASES: list[tuple[list[Any], pa.DataType]] = [
    ([None] * 5, pa.float64()),
    (["GET /cheap"] * 4, pa.string()),
    ([200] * 3, pa.int32()),
    ([1.5] * 3, pa.float64()),
    ([True] * 2, pa.bool_()),
    ([1, 2, 1], pa.int64()),
    ([None, "a"], pa.string()),
    (["a", None], pa.string()),
    ([], pa.string()),
]


@pytest.mark.parametrize(("values", "kind"), CASES)
def test_array_equals_pa_array(values: list[Any], kind: pa.DataType) -> None:
    got, want = _array(values, kind), pa.array(values, type=kind)
    assert got.type == want.type and got.equals(want) and got.null_count == want.null_count


def test_nan_columns_keep_their_nans() -> None:
    got = _array([math.nan, math.nan], pa.float64())
    assert len(got) == 2 and all(math.isnan(v) for v in got.to_pylist())


def test_a_constant_value_of_the_wrong_type_is_refused_as_pa_array_refuses_it() -> None:
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        _array(["x", "x"], pa.int64())


@given(st.lists(st.one_of(st.none(), st.integers(-3, 3)), max_size=30))
def test_any_int_column_round_trips(values: list[int | None]) -> None:
    assert _array(values, pa.int64()).to_pylist() == values


def test_written_part_reads_back_the_same_rows(tmp_path: Path) -> None:
    schema = pa.schema([("name", pa.string()), ("status", pa.int32()), ("cpu", pa.float64())])
    writer = PartWriter(tmp_path / "t.parquet", schema)
    writer.write({"name": ["a"] * 3, "status": [200, 500, 200], "cpu": [None] * 3})
    writer.close()
    assert pq.read_table(tmp_path / "t.parquet").to_pylist() == [
        {"name": "a", "status": 200, "cpu": None}, {"name": "a", "status": 500, "cpu": None},
        {"name": "a", "status": 200, "cpu": None}]  # fmt: skip
