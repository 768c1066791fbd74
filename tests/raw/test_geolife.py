"""GeoLife import: exact counts on the sample, no-op re-import, malformed input quarantined."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from parkloop.errors import SourceError
from parkloop.raw.geolife import GeolifeSource, import_geolife, parse_plt
from parkloop.store import Store

MINI_FIXES = 286_384
MINI_LABELS = 29
ROOT = "Geolife Trajectories 1.3/Data"
HEADER = "Geolife trajectory\r\nWGS 84\r\nAltitude is in Feet\r\nReserved 3\r\n" \
         "0,2,255,My Track,0,0,2,8421376\r\n0\r\n"


def test_mini_imports_every_fix_once(store: Store, geolife_mini: Path) -> None:
    report = import_geolife(store, geolife_mini)
    assert report.ok
    assert report.quarantined == 0
    assert dict(report.events_stored) == {"fix": MINI_FIXES, "label": MINI_LABELS}
    assert store.scalar("SELECT count(*) FROM raw_fix") == MINI_FIXES
    assert store.scalar("SELECT count(*) FROM raw_label") == MINI_LABELS
    devices = [d for (d,) in store.con.execute(
        "SELECT DISTINCT device_id FROM raw_fix ORDER BY 1").fetchall()]
    assert devices == ["geolife-000", "geolife-001", "geolife-021", "geolife-076",
                       "geolife-086"]
    # first fix of person 000's first file, as in the file (times are GMT)
    assert store.con.execute(
        """SELECT f.seq, f.t_ms, f.lat, f.lon, round(f.altitude_m, 4) FROM raw_fix f
           JOIN raw_batch b USING (batch_no)
           WHERE b.batch_id = '20081023025304.plt' ORDER BY f.seq LIMIT 1""").fetchall() == [
        (7, 1_224_730_384_000, 39.984702, 116.318417, round(492 * 0.3048, 4))]

    again = import_geolife(store, geolife_mini)
    assert again.batches_stored == 0
    assert again.batches_duplicate == report.batches_stored
    assert store.scalar("SELECT count(*) FROM raw_fix") == MINI_FIXES


def test_label_rows_become_label_events(store: Store, geolife_mini: Path) -> None:
    import_geolife(store, geolife_mini)
    first = store.con.execute(
        "SELECT device_id, seq, start_ms, end_ms, mode, t_ms FROM raw_label "
        "WHERE device_id = 'geolife-021' ORDER BY seq LIMIT 1").fetchone()
    assert first is not None
    assert first[1] == 2
    assert first[4] in {"car", "taxi", "bus", "walk", "subway", "bike"}
    assert first[2] <= first[3] == first[5]


def test_fast_and_robust_parsers_agree(geolife_mini: Path) -> None:
    """The vectorised CSV path and the line-by-line-checking path give the same batch."""
    source = GeolifeSource(geolife_mini)
    for f in [f for f in source.files if f.kind == "plt"][::9]:
        data = source.read(f.path)
        fast, robust = parse_plt(data, f), parse_plt(data, f, fast=False)
        assert fast.tables["fix"].equals(robust.tables["fix"])
        assert fast.digest() == robust.digest()


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


GOOD = "39.984702,116.318417,0,492,39744.1201851852,2008-10-23,02:53:04\r\n"


def test_malformed_lines_are_quarantined_with_file_and_line(tmp_path: Path,
                                                            store: Store) -> None:
    plt = f"{ROOT}/007/Trajectory/20081023025304.plt"
    body = (GOOD                                                            # line 7
            + "39.98,116.31,0,492,39744.12\r\n"                             # 8: 5 fields
            + "abc,116.318417,0,492,39744.1,2008-10-23,02:53:05\r\n"       # 9: bad lat
            + "\r\n"                                                        # 10: blank
            + "39.98,116.31,0,492,39744.12,2008-13-45,02:53:06\r\n"         # 11: bad date
            + "400.5,116.31,0,492,39744.12,2008-10-23,02:53:07\r\n"         # 12: lat 400
            + GOOD.replace("02:53:04", "02:53:08").rstrip("\r\n"))          # 13: no newline
    labels = ("Start Time\tEnd Time\tTransportation Mode\n"
              "2008/10/23 02:53:04\t2008/10/23 03:00:00\tcar\n"
              "2008/10/23 04:00:00\tlater\tbus\n"
              "2008/10/23 05:00:00\t2008/10/23 06:00:00\tjetpack\n")
    src = make_zip(tmp_path / "g.zip", {plt: (HEADER + body).encode(),
                                        f"{ROOT}/007/labels.txt": labels.encode()})
    report = import_geolife(store, src)
    assert report.ok
    assert dict(report.events_stored) == {"fix": 2, "label": 1}
    assert report.quarantined == 6
    rows = store.con.execute("SELECT source_ref, reason, kind FROM quarantine").fetchall()
    assert sorted(rows) == sorted([
        (f"{plt}:8", "malformed_line", "fix"), (f"{plt}:9", "malformed_line", "fix"),
        (f"{plt}:11", "malformed_line", "fix"), (f"{plt}:12", "lat_out_of_range", "fix"),
        (f"{ROOT}/007/labels.txt:3", "malformed_line", "label"),
        (f"{ROOT}/007/labels.txt:4", "mode_unknown", "label")])
    assert store.con.execute("SELECT seq FROM raw_fix ORDER BY seq").fetchall() == [(7,), (13,)]
    detail = store.scalar("SELECT detail FROM quarantine WHERE source_ref LIKE '%:9'")
    assert detail == "lat: not a number"
    assert store.scalar("SELECT payload FROM quarantine WHERE source_ref LIKE '%:8'") == \
        "39.98,116.31,0,492,39744.12"


def test_unreadable_member_is_set_aside_and_the_rest_imported(tmp_path: Path,
                                                              store: Store) -> None:
    good = f"{ROOT}/008/Trajectory/20081023025304.plt"
    bad = f"{ROOT}/008/Trajectory/20081024000000.plt"
    src = make_zip(tmp_path / "g.zip", {good: (HEADER + GOOD * 50).encode(),
                                        bad: (HEADER + GOOD * 50).encode()})
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo(bad)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 5
    data[start:start + 4] = b"\xff\x00\xff\x00"  # corrupt the compressed bytes
    src.write_bytes(bytes(data))
    report = import_geolife(store, src)
    assert not report.ok
    assert len(report.set_aside) == 1
    assert report.set_aside[0].startswith(bad)
    assert report.events_stored["fix"] == 50


def test_folder_and_zip_give_the_same_raw_events(tmp_path: Path, geolife_mini: Path) -> None:
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(geolife_mini) as zf:
        names = [n for n in zf.namelist() if "/000/" in n or "/021/" in n]
        zf.extractall(folder, members=names)
        subset = make_zip(tmp_path / "subset.zip", {n: zf.read(n) for n in names})
    hashes = []
    for i, src in enumerate([folder, subset]):
        with Store.create(tmp_path / f"s{i}") as s:
            import_geolife(s, src)
            hashes.append(s.con.execute(
                "SELECT device_id, batch_id, content_hash FROM raw_batch ORDER BY ALL").fetchall())
    assert hashes[0] == hashes[1]
    assert len(hashes[0]) > 10


@pytest.mark.parametrize("kind", ["missing", "not-zip", "empty-dir"])
def test_unusable_sources_fail_with_one_clear_reason(tmp_path: Path, store: Store,
                                                     kind: str) -> None:
    path = tmp_path / "x"
    if kind == "not-zip":
        path.write_text("hello")
    elif kind == "empty-dir":
        path.mkdir()
    with pytest.raises(SourceError, match=r"does not exist|neither a zip|no GeoLife files"):
        import_geolife(store, path)
