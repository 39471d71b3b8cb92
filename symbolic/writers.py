"""Vectorised table writers for sweeps: CSV, JSON and Parquet at the speed of evaluation.

A sweep yields chunks of columns (NumPy arrays). Integer columns (int64) are printed with NumPy
digit arithmetic: no Python object per cell, so writing keeps up with evaluation, and memory stays
bounded by one chunk. Exact integers stay integers: an int64 column prints its exact digits, an
object column of Python ints (values past int64) prints each int's exact digits; only a value that
is not whole (a Fraction of a non-byte quantity) is written as the nearest float. A float column
whose values are whole numbers (``--float`` sweeps round to whole units) prints them as integers;
other floats are printed with ``repr`` precision.

>>> import io, numpy as np
>>> out = io.BytesIO()
>>> write_csv(out, ["a", "b"], [{"a": np.array([1, 20]), "b": np.array([-3, 4000])}])
2
>>> out.getvalue().decode()
'a,b\\n1,-3\\n20,4000\\n'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from typing import IO, Any

import numpy as np

from .errors import SymbolicError

__all__ = ["format_rows", "write_csv", "write_json", "write_parquet", "cell"]

# the four ASCII digits of 0000..9999, one table per position (thousands, hundreds, tens, ones)
_QUADS = np.frombuffer(b"".join(b"%04d" % i for i in range(10000)), dtype=np.uint8).reshape(10000, 4).T.copy()
_POW10 = np.array([10**k for k in range(1, 20)], dtype=np.uint64)
_INT64_MIN = -(2**63)


def cell(value: Any) -> int | float:
    """One value as a JSON/CSV number: ints (of any size) stay exact; a non-whole value becomes a float."""
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, Fraction) and value.denominator == 1:
        return int(value)
    as_float = float(value)
    return int(as_float) if as_float.is_integer() and abs(as_float) < 2**53 else as_float


# Text is built column-major: a (width, rows) uint8 matrix per column (each digit position a
# contiguous row, so digit arithmetic runs on whole arrays), with a mask of the bytes used (the
# leading ones of a narrower number are padding). The row-major text is the transpose, compressed.


def _int_text(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ASCII digits of an int64 array, right-aligned: a (width, rows) uint8 matrix and its mask of used bytes."""
    values = np.asarray(values, dtype=np.int64)
    n = len(values)
    negative = values < 0
    has_negative = bool(negative.any())
    magnitude = values.astype(np.uint64)
    if has_negative:
        magnitude[negative] = np.uint64(0) - magnitude[negative]  # two's complement: exact for int64's minimum too
    digits = np.searchsorted(_POW10, magnitude, side="right") + 1
    used = digits + negative if has_negative else digits
    width = int(used.max(initial=1))
    text = np.empty((width, n), dtype=np.uint8)
    rest = magnitude
    if int(magnitude.max(initial=0)) < 2**63:
        rest = magnitude.astype(np.int64)  # signed division is as exact here, and faster
    row = width
    while row > 0:
        quotient = rest // 10000
        group = rest - quotient * 10000
        rest = quotient
        for position in range(3, -1, -1):
            row -= 1
            if row < 0:
                break
            np.take(_QUADS[position], group, out=text[row])
    mask = np.arange(width)[:, None] >= (width - used)[None, :]
    if has_negative:
        rows = np.flatnonzero(negative)
        text[width - used[rows], rows] = ord("-")
    return text, mask


def _column_text(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The text of one column as (matrix, mask): digits for integers, ``repr`` for floats and objects."""
    if values.dtype.kind in "iu" and (values.dtype.itemsize < 8 or values.dtype.kind == "i"):
        if len(values) >= 1024:
            low, high = int(values.min()), int(values.max())
            if high - low < len(values) // 4:  # few distinct values (a grid axis): format each once, then gather
                text, mask = _int_text(np.arange(low, high + 1, dtype=np.int64))
                index = (values - low).astype(np.intp)
                return np.take(text, index, axis=1), np.take(mask, index, axis=1)
        return _int_text(values)
    if values.dtype.kind == "f" and len(values):
        if not np.isfinite(values).all():  # never "inf" or "nan" in a table
            raise SymbolicError("--float", "a value is beyond float64's range; leave out --float for exact integers")
        whole = np.isfinite(values).all() and np.abs(values).max() < 2**63 and (values == np.rint(values)).all()
        if whole:  # whole numbers held as floats (float-mode sweeps round to whole units): print them as integers
            return _int_text(values.astype(np.int64))
    if values.dtype.kind == "O":
        ints = [cell(v) for v in values.tolist()]
        if all(isinstance(v, int) and _INT64_MIN <= v < 2**63 for v in ints):
            return _int_text(np.array(ints, dtype=np.int64))
        strings = [str(v) if isinstance(v, int) else repr(v) for v in ints]
    else:
        strings = [str(v) if isinstance(v, int) else repr(v) for v in (cell(x) for x in values.tolist())]
    encoded = np.array(strings, dtype=np.bytes_) if strings else np.zeros(0, dtype="S1")
    width = max(encoded.dtype.itemsize, 1)
    text = np.frombuffer(encoded.tobytes(), dtype=np.uint8).reshape(len(strings), width).T
    lengths = np.char.str_len(encoded) if strings else np.zeros(0, dtype=np.intp)
    mask = np.arange(width)[:, None] < lengths[None, :]
    return text, mask


def format_rows(columns: Sequence[np.ndarray], sep: bytes, start: bytes, end: bytes) -> bytes:
    """Every row as ``start + col0 + sep + col1 + ... + end``, concatenated (ASCII bytes)."""
    if not columns or len(columns[0]) == 0:
        return b""
    n = len(columns[0])
    parts: list[tuple[Any, np.ndarray | None]] = []
    if start:
        parts.append((start, None))
    for i, column in enumerate(columns):
        if i and sep:
            parts.append((sep, None))
        parts.append(_column_text(np.asarray(column)))
    if end:
        parts.append((end, None))
    width = sum(len(t) if m is None else t.shape[0] for t, m in parts)
    text = np.empty((width, n), dtype=np.uint8)  # column-major: each part is a block of whole rows
    mask = np.ones((width, n), dtype=bool)
    at = 0
    for part, used in parts:
        if used is None:
            text[at : at + len(part)] = np.frombuffer(part, dtype=np.uint8)[:, None]
            at += len(part)
        else:
            rows = part.shape[0]
            text[at : at + rows] = part
            mask[at : at + rows] = used
            at += rows
    # one transpose of each matrix to row-major, then the used bytes in row order
    return np.ascontiguousarray(text.T)[np.ascontiguousarray(mask.T)].tobytes()


def _binary(out: IO[Any]) -> IO[bytes]:
    """A binary stream for ``out`` (its buffer when it is a text stream)."""
    if hasattr(out, "buffer"):
        out.flush()
        return out.buffer
    return out


def _arrow_rows() -> Any:
    """A function printing int64 columns as CSV rows with pyarrow's writer (the same bytes as
    :func:`format_rows`, faster), or None when pyarrow is not installed."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
    except ImportError:
        return None

    def rows(columns: Sequence[np.ndarray]) -> bytes:
        table = pa.table({f"c{i}": column for i, column in enumerate(columns)})
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, batch_size=max(1, len(columns[0]))))
        return sink.getvalue().to_pybytes()

    return rows


def _whole_int64(values: np.ndarray) -> np.ndarray:
    """A float column of whole numbers within int64 as int64 (the digits :func:`format_rows` prints
    for it anyway); any other column as it is."""
    if values.dtype.kind != "f" or values.ndim != 1 or not len(values):
        return values
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(values).all() and np.abs(values).max() < 2**63 and (values == np.rint(values)).all()
    return values.astype(np.int64) if whole else values


def write_csv(out: IO[Any], names: Sequence[str], chunks: Iterable[Mapping[str, np.ndarray]]) -> int:
    """Write a header and every row of ``chunks`` as CSV to ``out``; returns the rows written.

    Chunks whose columns are all int64 go through pyarrow's CSV writer when it is installed (the
    same text); anything else through :func:`format_rows`. Chunks are evaluated and formatted in a
    second thread while the previous one is written (NumPy, pyarrow and file writes release the
    interpreter lock); at most two formatted chunks wait, so memory stays bounded.
    """
    stream = _binary(out)
    stream.write((",".join(names) + "\n").encode())
    arrow = _arrow_rows()

    def text(chunk: Mapping[str, np.ndarray]) -> tuple[bytes, int]:
        columns = [_whole_int64(np.asarray(chunk[n])) for n in names]
        if arrow is not None and len(columns[0]) and all(c.dtype == np.int64 and c.ndim == 1 for c in columns):
            return arrow(columns), len(columns[0])
        return format_rows(columns, b",", b"", b"\n"), len(columns[0])

    kept = 0
    for data, rows in _ahead(text(chunk) for chunk in chunks):
        stream.write(data)
        kept += rows
    stream.flush()
    return kept


def _ahead(items: Iterable[Any], depth: int = 2) -> Iterator[Any]:
    """``items`` in order, computed in a second thread up to ``depth`` ahead of the consumer; an
    exception raised computing them is raised here, and a consumer that stops early stops the thread."""
    import queue
    import threading

    done = object()
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((done, None))
        except BaseException as err:  # handed to the consumer, raised there
            slots.put((done, err))

    worker = threading.Thread(target=produce, name="symbolic-csv", daemon=True)
    worker.start()
    try:
        while True:
            item, err = slots.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # let a blocked producer see the stop
            try:
                slots.get_nowait()
            except queue.Empty:
                worker.join(0.05)


def write_json(
    out: IO[Any], header: Mapping[str, Any], names: Sequence[str], chunks: Iterable[Mapping[str, np.ndarray]]
) -> int:
    """Write one JSON object: ``header``, then ``"rows"`` (lists in ``names`` order), then ``"kept"``."""
    stream = _binary(out)
    stream.write((json.dumps({**header, "columns": list(names)})[:-1] + ', "rows": [').encode())
    kept = 0
    for chunk in chunks:
        columns = [np.asarray(chunk[n]) for n in names]
        text = format_rows(columns, b", ", b",\n[", b"]")
        stream.write(text[1:] if kept == 0 else text)
        kept += len(columns[0])
    stream.write(f'\n], "kept": {kept}}}\n'.encode())
    stream.flush()
    return kept


def write_parquet(path: Any, names: Sequence[str], chunks: Iterable[Mapping[str, np.ndarray]]) -> int:
    """Write every row to the Parquet file ``path`` (needs pyarrow); returns the rows written.

    int64 columns stay int64; a value column holding integers past int64 is written as exact
    decimal strings, a non-whole exact value as float64.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    kept = 0
    try:
        for chunk in chunks:
            arrays = {}
            for name in names:
                values = np.asarray(chunk[name])
                if values.dtype.kind == "O":
                    cells = [cell(v) for v in values.tolist()]
                    if all(isinstance(v, int) for v in cells):
                        fits = all(-(2**63) <= v < 2**63 for v in cells)
                        values = pa.array(cells, pa.int64()) if fits else pa.array([str(v) for v in cells])
                    else:
                        values = pa.array([float(v) for v in cells], pa.float64())
                arrays[name] = values
            table = pa.table(arrays)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            elif table.schema != writer.schema:
                table = table.cast(writer.schema)
            writer.write_table(table)
            kept += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return kept
