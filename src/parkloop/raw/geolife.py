"""Import the official "Geolife Trajectories 1.3" data set (zip or extracted folder).

Each ``Data/NNN/Trajectory/*.plt`` becomes one batch of fix events of device ``geolife-NNN``
(batch id: the file name, so a re-import stores nothing new); each ``Data/NNN/labels.txt``
becomes one batch of label events. Times in GeoLife are GMT; altitudes are feet (-777 means
unknown). Lines that cannot be parsed are quarantined with their file and line number.

Zheng, Xie, Ma: GeoLife: A Collaborative Social Networking Service among User, Location and
Trajectory. IEEE Data Engineering Bulletin 33(2), 2010.
"""

from __future__ import annotations

import io
import re
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from parkloop.errors import SourceError
from parkloop.raw.events import EventBatch, digests
from parkloop.raw.importing import ImportReport, store_stream
from parkloop.raw.lines import FieldType, parse_lines
from parkloop.raw.schema import FIX, QUARANTINE_SCHEMA

if TYPE_CHECKING:
    from parkloop.store import Store

_PLT = re.compile(r"(?:^|/)Data/(\d{3})/Trajectory/([^/]+\.plt)$", re.IGNORECASE)
_LABELS = re.compile(r"(?:^|/)Data/(\d{3})/labels\.txt$", re.IGNORECASE)
PLT_HEADER_LINES = 6
FEET = 0.3048
UNKNOWN_ALTITUDE_FT = -777.0
DAY_MS = 86_400_000

_PLT_FIELDS: tuple[tuple[str, FieldType], ...] = (
    ("lat", "float"), ("lon", "float"), ("zero", "skip"), ("alt_ft", "float"),
    ("days", "skip"), ("date", "date"), ("time", "time"))
_PLT_CSV = (
    pacsv.ReadOptions(column_names=[n for n, _ in _PLT_FIELDS], use_threads=False,
                      block_size=1 << 24),
    pacsv.ParseOptions(),
    pacsv.ConvertOptions(
        column_types={"lat": pa.float64(), "lon": pa.float64(), "alt_ft": pa.float64(),
                      "date": pa.date32(), "time": pa.time32("s")},
        include_columns=["lat", "lon", "alt_ft", "date", "time"]),
)


@dataclass(frozen=True)
class GeolifeFile:
    """One file of the data set: its path inside the source, its person and what it holds."""

    path: str
    person: str
    kind: str  # "plt" or "labels"

    @property
    def device_id(self) -> str:
        return f"geolife-{self.person}"

    @property
    def batch_id(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class GeolifeSource:
    """A GeoLife zip or folder, listed once; files are read by :meth:`read` (thread-safe)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        if self.path.is_dir():
            self._sizes = {p.relative_to(self.path).as_posix(): p.stat().st_size
                           for p in self.path.rglob("*") if p.is_file()}
            self._zip = False
        elif self.path.is_file():
            try:
                with zipfile.ZipFile(self.path) as zf:
                    self._sizes = {i.filename: i.file_size for i in zf.infolist()}
            except zipfile.BadZipFile:
                raise SourceError(f"{self.path} is neither a zip archive nor a folder") from None
            self._zip = True
        else:
            raise SourceError(f"{self.path} does not exist")
        self.files: list[GeolifeFile] = []
        for name in sorted(self._sizes):
            if m := _PLT.search(name):
                self.files.append(GeolifeFile(name, m.group(1), "plt"))
            elif m := _LABELS.search(name):
                self.files.append(GeolifeFile(name, m.group(1), "labels"))
        if not self.files:
            raise SourceError(
                f"no GeoLife files in {self.path}: expected 'Data/NNN/Trajectory/*.plt' "
                "as in 'Geolife Trajectories 1.3'")

    def size(self, name: str) -> int:
        """Uncompressed size of a file, bytes."""
        return self._sizes[name]

    def read(self, name: str) -> bytes:
        if not self._zip:
            return (self.path / name).read_bytes()
        zf = getattr(self._local, "zf", None)
        if zf is None:
            zf = self._local.zf = zipfile.ZipFile(self.path)
        return zf.read(name)


def parse_plt(data: bytes, f: GeolifeFile, *, fast: bool = True) -> EventBatch:
    """One .plt file as a batch of fixes; seq is the line number in the file. ``fast=False``
    takes the robust path even for a well-formed file (the tests compare the two)."""
    body = _body(data)
    table = _fast_plt(body) if fast else None
    if table is not None and table.num_rows == body.count(b"\n"):
        return _plt_batch(f, table, _line_numbers(table.num_rows), None)
    # malformed or blank lines somewhere: the robust path finds and numbers them
    table, bad = parse_lines(body, first_line=PLT_HEADER_LINES + 1, delimiter=",",
                             fields=_PLT_FIELDS)
    return _plt_batch(f, table, np.asarray(table.column("line")), _rejects(bad, f, "fix"))


def parse_plts(items: list[tuple[GeolifeFile, bytes]]) -> list[EventBatch]:
    """Many .plt files with one CSV read over all their bodies (the common case: all files
    well-formed); where any line is malformed, each file is parsed on its own."""
    bodies = [_body(data) for _, data in items]
    counts = np.array([b.count(b"\n") for b in bodies], dtype=np.int64)
    table = _fast_plt(b"".join(bodies))
    if table is None or table.num_rows != counts.sum():
        return [parse_plt(data, f) for f, data in items]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lines = np.arange(len(table), dtype=np.int64) - np.repeat(starts, counts) \
        + PLT_HEADER_LINES + 1
    fixes = _fix_table(table, lines)
    return [EventBatch(f.device_id, f.batch_id, "geolife",
                       {"fix": fixes.slice(int(starts[k]), int(counts[k]))}, origin=f.path)
            for k, (f, _) in enumerate(items)]


def _plt_batch(f: GeolifeFile, table: pa.Table, lines: np.ndarray,
               rejects: pa.Table | None) -> EventBatch:
    return EventBatch(f.device_id, f.batch_id, "geolife", {"fix": _fix_table(table, lines)},
                      QUARANTINE_SCHEMA.empty_table() if rejects is None else rejects,
                      origin=f.path)


def _fix_table(table: pa.Table, lines: np.ndarray) -> pa.Table:
    """Parsed .plt columns as fix events: GMT date + time -> t_ms, feet -> metres."""
    alt_ft = table.column("alt_ft")
    altitude = pc.if_else(pc.equal(alt_ft, UNKNOWN_ALTITUDE_FT), None,
                          pc.multiply(alt_ft, FEET))
    days = np.asarray(table.column("date").cast(pa.int32()), dtype=np.int64)
    secs = np.asarray(table.column("time").cast(pa.int32()), dtype=np.int64)
    n = table.num_rows
    nulls = pa.nulls(n, pa.float64())
    return pa.Table.from_arrays(
        [pa.array(lines), pa.array(days * DAY_MS + secs * 1000), table.column("lat"),
         table.column("lon"), nulls, nulls, nulls, altitude, pa.nulls(n, pa.string())],
        schema=FIX.arrow_schema)


def _body(data: bytes) -> bytes:
    """The data lines of a .plt file, ending with a newline."""
    body = data[_after_lines(data, PLT_HEADER_LINES):]
    return body if not body or body.endswith(b"\n") else body + b"\n"


def _line_numbers(n: int) -> np.ndarray:
    return np.arange(PLT_HEADER_LINES + 1, PLT_HEADER_LINES + 1 + n, dtype=np.int64)


def parse_labels(data: bytes, f: GeolifeFile) -> EventBatch:
    """One labels.txt as a batch of label events (stated at the end of their span)."""
    body = data[_after_lines(data, 1):]
    table, bad = parse_lines(body, first_line=2, delimiter="\t", fields=(
        ("start", "datetime"), ("end", "datetime"), ("mode", "str")))
    end_ms = pc.multiply(table.column("end").cast(pa.int64()), 1000)
    return EventBatch.of(f.device_id, f.batch_id, "geolife", {"label": {
        "seq": table.column("line"), "t_ms": end_ms,
        "start_ms": pc.multiply(table.column("start").cast(pa.int64()), 1000),
        "end_ms": end_ms, "mode": pc.utf8_lower(table.column("mode")),
    }}, rejects=_rejects(bad, f, "label"), origin=f.path)


def import_geolife(store: Store, path: GeolifeSource | Path | str, *,
                   on_start: Callable[[int], None] | None = None,
                   on_done: Callable[[int], None] | None = None,
                   chunk_events: int = 400_000, threads: int = 2) -> ImportReport:
    """Import GeoLife into ``store``, committing every ~``chunk_events`` events.

    ``on_start(n_files)`` is called once the files are listed, ``on_done(k)`` as k more are
    stored. Malformed lines are quarantined; files that cannot be read at all are set aside.
    """
    source = path if isinstance(path, GeolifeSource) else GeolifeSource(path)
    if on_start:
        on_start(len(source.files))
    batches = (batch if batch is not None else f"{f.path}: unreadable"
               for f, batch in _parse_all(source, threads))
    return store_stream(store, batches, ImportReport(files=len(source.files)),
                        chunk_events=chunk_events, on_done=on_done)


def _parse_all(source: GeolifeSource, threads: int, group_bytes: int = 4 << 20
               ) -> Iterator[tuple[GeolifeFile, EventBatch | None]]:
    """Parse files in order, in groups of ~``group_bytes``, ``threads`` groups at a time
    (zlib and Arrow release the GIL)."""
    groups: list[list[GeolifeFile]] = [[]]
    size = 0
    for f in source.files:
        if size >= group_bytes:
            groups.append([])
            size = 0
        groups[-1].append(f)
        size += source.size(f.path)

    def work(group: list[GeolifeFile]) -> list[tuple[GeolifeFile, EventBatch | None]]:
        done: list[tuple[GeolifeFile, EventBatch | None]] = []
        plts: list[tuple[GeolifeFile, bytes]] = []
        for f in group:
            try:
                data = source.read(f.path)
            except (OSError, zipfile.BadZipFile, EOFError, zlib.error):
                done.append((f, None))
                continue
            if f.kind == "plt":
                plts.append((f, data))
            else:
                done.append((f, parse_labels(data, f)))
        done += zip([f for f, _ in plts], parse_plts(plts), strict=True)
        digests([b for _, b in done if b is not None])  # hash here, in parallel
        order = {f.path: i for i, f in enumerate(group)}
        return sorted(done, key=lambda item: order[item[0].path])

    with ThreadPoolExecutor(max_workers=threads) as pool:
        ahead = 2 * threads  # groups parsed ahead of the writer: bounds memory
        futures = [pool.submit(work, g) for g in groups[:ahead]]
        for k in range(len(groups)):
            if k + ahead < len(groups):
                futures.append(pool.submit(work, groups[k + ahead]))
            yield from futures[k].result()
            futures[k] = None  # type: ignore[call-overload]


def _fast_plt(body: bytes) -> pa.Table | None:
    """Arrow's CSV reader over a well-formed body; None if any line is malformed."""
    if not body:
        return pa.table({"lat": pa.array([], pa.float64()), "lon": pa.array([], pa.float64()),
                         "alt_ft": pa.array([], pa.float64()), "date": pa.array([], pa.date32()),
                         "time": pa.array([], pa.time32("s"))})
    try:
        return pacsv.read_csv(io.BytesIO(body), read_options=_PLT_CSV[0],
                              parse_options=_PLT_CSV[1], convert_options=_PLT_CSV[2])
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _rejects(bad: pa.Table, f: GeolifeFile, kind: str) -> pa.Table:
    lines = bad.column("line").to_pylist()
    return pa.table({
        "seq": pa.array(lines, pa.int64()),
        "kind": pa.array([kind] * len(lines), pa.string()),
        "reason": bad.column("reason"),
        "detail": bad.column("detail"),
        "source_ref": pa.array([f"{f.path}:{n}" for n in lines], pa.string()),
        "payload": bad.column("text"),
    }, schema=QUARANTINE_SCHEMA)


def _after_lines(data: bytes, n: int) -> int:
    """Offset just after the first ``n`` lines of ``data`` (its length if it has fewer)."""
    pos = 0
    for _ in range(n):
        nl = data.find(b"\n", pos)
        if nl < 0:
            return len(data)
        pos = nl + 1
    return pos


