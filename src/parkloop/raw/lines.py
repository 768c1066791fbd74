"""Robust, vectorised parsing of delimited text lines into typed columns.

Used for text sources (GeoLife files) wherever a line may be malformed: every line either
becomes a typed row or a reject carrying its line number and what is wrong with it. The work
is done by Arrow compute kernels over all lines at once, not by a Python loop per line.

>>> t, rej = parse_lines(b"1.5,2020-01-02,23:59:58\\nx,2020-01-02,00:00:00\\n\\n"
...                      b"3,2020-13-01,00:00:00\\n", first_line=7, delimiter=",",
...                      fields=[("a", "float"), ("d", "date"), ("t", "time")])
>>> t.to_pydict()
{'line': [7], 'a': [1.5], 'd': [datetime.date(2020, 1, 2)], 't': [datetime.time(23, 59, 58)]}
>>> rej.column("line").to_pylist(), rej.column("detail").to_pylist()
([8, 10], ['a: not a number', 'd: not a date (YYYY-MM-DD)'])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FieldType = Literal["float", "date", "time", "datetime", "str", "skip"]

_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_FORMATS = {"date": ("%Y-%m-%d", "a date (YYYY-MM-DD)"),
            "time": ("%H:%M:%S", "a time (HH:MM:SS)"),
            "datetime": ("%Y/%m/%d %H:%M:%S", "a time (YYYY/MM/DD HH:MM:SS)")}


def split_lines(data: bytes, first_line: int) -> tuple[pa.Array, np.ndarray]:
    """Non-blank lines of ``data`` (CR/LF stripped, invalid UTF-8 replaced) and their numbers."""
    text = data.decode("utf-8", errors="replace")
    lines = pa.array(text.split("\n"))
    lines = pc.utf8_rtrim(lines, characters="\r")
    numbers = np.arange(first_line, first_line + len(lines), dtype=np.int64)
    keep = pc.invert(pc.equal(pc.utf8_trim_whitespace(lines), ""))
    return lines.filter(keep), numbers[np.asarray(keep)]


def parse_lines(data: bytes, *, first_line: int, delimiter: str,
                fields: Sequence[tuple[str, FieldType]]) -> tuple[pa.Table, pa.Table]:
    """Parse ``data`` (whose first line is number ``first_line``) into a table of the valid
    lines (column ``line`` plus each field not of type ``skip``) and a table of rejected lines
    (``line``, ``text``, ``reason``, ``detail``). Blank lines are neither."""
    lines, numbers = split_lines(data, first_line)
    parts = pc.split_pattern(lines, delimiter)
    width_ok = np.asarray(pc.equal(pc.list_value_length(parts), len(fields)))
    problems: list[tuple[str, np.ndarray]] = [
        (f"expected {len(fields)} fields separated by {delimiter!r}", ~width_ok)]
    columns: dict[str, pa.Array] = {"line": pa.array(numbers)}
    safe = parts.filter(pa.array(width_ok))  # only well-formed rows can be indexed by position
    index = np.flatnonzero(width_ok)
    for pos, (name, kind) in enumerate(fields):
        if kind == "skip":
            continue
        raw = pc.utf8_trim_whitespace(pc.list_element(safe, pos))
        value, ok = _convert(raw, kind)
        bad = np.zeros(len(lines), dtype=bool)
        bad[index] = ~ok
        problems.append((f"{name}: not {_what(kind)}", bad))
        full = pa.nulls(len(lines), value.type)
        columns[name] = _scatter(full, index, value)
    rejected = np.zeros(len(lines), dtype=bool)
    for _, mask in problems:
        rejected |= mask
    table = pa.table(columns).filter(pa.array(~rejected))
    idx = np.flatnonzero(rejected)
    details = ["; ".join(msg for msg, mask in problems if mask[i]) for i in idx]
    rejects = pa.table({
        "line": pa.array(numbers[idx]), "text": lines.take(pa.array(idx)),
        "reason": pa.array(["malformed_line"] * len(idx), pa.string()),
        "detail": pa.array(details, pa.string())})
    return table, rejects


def _what(kind: FieldType) -> str:
    return "a number" if kind == "float" else _FORMATS[kind][1] if kind in _FORMATS else kind


def _convert(raw: pa.Array, kind: FieldType) -> tuple[pa.Array, np.ndarray]:
    if kind == "str":
        return raw, np.ones(len(raw), dtype=bool)
    if kind == "float":
        ok = np.asarray(pc.fill_null(pc.match_substring_regex(raw, _NUMBER), False))
        clean = pc.if_else(pa.array(ok), raw, "0")
        return pc.cast(clean, pa.float64()), ok
    fmt = _FORMATS[kind][0]
    ts = pc.strptime(raw, format=fmt, unit="s", error_is_null=True)
    ok = np.asarray(ts.is_valid())
    if kind == "date":
        return pc.cast(ts, pa.date32()), ok
    if kind == "time":
        seconds = pc.add(pc.add(pc.multiply(pc.hour(ts), 3600), pc.multiply(pc.minute(ts), 60)),
                         pc.second(ts))
        return pc.cast(pc.cast(seconds, pa.int32()), pa.time32("s")), ok
    return ts, ok


def _scatter(full: pa.Array, index: np.ndarray, values: pa.Array) -> pa.Array:
    """``full`` with positions ``index`` replaced by ``values``."""
    if len(index) == len(full):
        return values
    mask = np.zeros(len(full), dtype=bool)
    mask[index] = True
    return pc.replace_with_mask(full, pa.array(mask), values)
