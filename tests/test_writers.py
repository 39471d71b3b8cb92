"""The vectorised sweep writers print exactly what Python prints, and JSON/Parquet read back exactly."""

from __future__ import annotations

import io
import json
from fractions import Fraction
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolic.writers import format_rows, write_csv, write_json, write_parquet

int64s = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=200, deadline=None)
@given(a=st.lists(int64s, min_size=1, max_size=50), shift=st.integers(0, 62))
def test_int64_columns_print_like_python(a, shift):
    x = np.array(a, dtype=np.int64) >> shift
    y = x[::-1].copy()
    text = format_rows([x, y], b",", b"", b"\n").decode()
    assert text.splitlines() == [f"{int(i)},{int(j)}" for i, j in zip(x, y, strict=True)]


def test_axis_columns_with_few_values_print_like_python():
    x = np.tile(np.arange(1, 4001, dtype=np.int64), 3)
    y = np.repeat(np.array([7, 100000], dtype=np.int64), len(x) // 2)
    assert format_rows([x, y], b",", b"", b"\n").decode().splitlines() == [
        f"{i},{j}" for i, j in zip(x, y, strict=True)
    ]


def test_object_columns_keep_big_integers_exact():
    values = np.array([2**70, -(2**80), 5, Fraction(6, 3)], dtype=object)
    out = io.BytesIO()
    assert write_csv(out, ["v"], [{"v": values}]) == 4
    assert out.getvalue().decode().split() == ["v", str(2**70), str(-(2**80)), "5", "2"]


def test_a_fraction_is_the_nearest_float_and_floats_use_repr():
    out = io.BytesIO()
    write_csv(out, ["a", "b"], [{"a": np.array([Fraction(7, 2)], dtype=object), "b": np.array([0.1])}])
    assert out.getvalue().decode().split() == ["a,b", "3.5,0.1"]


def test_json_reads_back_with_exact_integers():
    chunks = [
        {"x": np.array([1, 2]), "v": np.array([2**62, 3])},
        {"x": np.array([3]), "v": np.array([2**70], dtype=object)},
    ]
    buffer = io.BytesIO()
    write_json(buffer, {"model": "m"}, ["x", "v"], chunks)
    data = json.loads(buffer.getvalue())
    assert data["rows"] == [[1, 2**62], [2, 3], [3, 2**70]] and data["kept"] == 3 and data["columns"] == ["x", "v"]


def test_empty_chunks_write_a_valid_document():
    buffer = io.BytesIO()
    write_json(buffer, {}, ["x"], [{"x": np.array([], dtype=np.int64)}])
    assert json.loads(buffer.getvalue())["rows"] == []


def test_parquet_keeps_int64(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "x.parquet"
    chunks = [
        {"x": np.arange(3), "v": np.array([2**62, 1, 2], dtype=np.int64)},
        {"x": np.arange(2), "v": np.array([4, 5])},
    ]
    assert write_parquet(str(path), ["x", "v"], chunks) == 5
    table = pq.read_table(path)
    assert str(table.schema.field("v").type) == "int64"
    assert table.column("v").to_pylist() == [2**62, 1, 2, 4, 5]


def test_whole_floats_print_as_integers_and_others_as_repr():
    whole = np.array([1.0, 2500.0, -3.0, 2.0**62])
    assert format_rows([whole], b",", b"", b"\n").decode().split() == ["1", "2500", "-3", str(2**62)]
    mixed = np.array([1.0, 0.5, 1e20])
    assert format_rows([mixed], b",", b"", b"\n").decode().split() == ["1", "0.5", "1e+20"]


def test_a_value_beyond_float64_is_refused_never_written_as_inf():
    from symbolic.errors import SymbolicError

    with pytest.raises(SymbolicError) as err:
        format_rows([np.array([1.0, np.inf])], b",", b"", b"\n")
    assert err.value.field == "--float"


@settings(max_examples=100, deadline=None)
@given(a=st.lists(int64s, min_size=1, max_size=50), shift=st.integers(0, 62))
def test_csv_through_pyarrow_is_byte_for_byte_the_numpy_text(a, shift):
    """int64 chunks go through pyarrow's CSV writer when it is installed: the same bytes as the NumPy printer."""
    pytest.importorskip("pyarrow")
    from symbolic import writers

    x = np.array(a, dtype=np.int64) >> shift
    chunks = [{"a": x, "b": x[::-1].copy()}, {"a": x[:1], "b": x[:1]}]
    fast = io.BytesIO()
    write_csv(fast, ["a", "b"], chunks)
    with mock.patch.object(writers, "_arrow_rows", lambda: None):
        slow = io.BytesIO()
        write_csv(slow, ["a", "b"], chunks)
    assert fast.getvalue() == slow.getvalue()
    assert fast.getvalue().decode().splitlines()[1:] == [
        f"{int(i)},{int(j)}" for i, j in zip(x, x[::-1], strict=True)
    ] + [f"{int(x[0])},{int(x[0])}"]


def test_csv_written_ahead_keeps_the_order_and_raises_what_a_chunk_raised():
    """Chunks are evaluated in a second thread: the rows come out in order, and an error raised while
    computing a chunk (a value past float64, say) is raised by write_csv, after the rows before it."""
    import threading

    from symbolic.errors import SymbolicError

    def chunks():
        for k in range(50):
            yield {"a": np.arange(k * 10, k * 10 + 10, dtype=np.int64)}
        raise SymbolicError("--float", "a value is beyond float64's range")

    out = io.BytesIO()
    with pytest.raises(SymbolicError, match="float64"):
        write_csv(out, ["a"], chunks())
    assert out.getvalue().decode().splitlines() == ["a", *(str(i) for i in range(500))]
    assert not any(t.name == "symbolic-csv" for t in threading.enumerate())  # the worker is gone


def test_csv_stops_its_worker_when_the_consumer_stops():
    import threading

    from symbolic import writers

    endless = ({"a": np.arange(3, dtype=np.int64)} for _ in iter(int, 1))
    items = writers._ahead(endless)
    next(items)
    items.close()  # the consumer stops early (a closed pipe)
    assert not any(t.name == "symbolic-csv" for t in threading.enumerate())
