"""bench/facts_quality.py: its matching rules on hand-made rows, and a run end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import duckdb
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "facts_quality.py"


@pytest.fixture(scope="module")
def fq() -> ModuleType:
    spec = importlib.util.spec_from_file_location("facts_quality", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_match_points_tolerances(fq: ModuleType) -> None:
    con = duckdb.connect()
    con.execute(fq.MACROS)
    # one true point; leg ends 30 s / ~44 m, 90 s / ~0 m and 30 s / ~111 m away, another device
    con.execute("""CREATE TEMP TABLE p AS SELECT * FROM (VALUES
        (1, 'a', 1000000, 48.0, 11.0), (2, 'a', 5000000, 48.0, 11.0),
        (3, 'b', 1000000, 48.0, 11.0)) t(pid, device_id, t_ms, lat, lon)""")
    con.execute("""CREATE TEMP TABLE e AS SELECT * FROM (VALUES
        ('a', 1030000, 48.0004, 11.0), ('a', 5090000, 48.0, 11.0),
        ('a', 4970000, 48.001, 11.0), ('c', 1000000, 48.0, 11.0))
        t(device_id, ended_ms, lat, lon)""")
    fq.match_points(con, "p", "e", "h", ((60, 50), (120, 100)))
    rows = {r[0]: r[1:] for r in con.execute(
        "SELECT pid, hit_60s_50m, hit_120s_100m, near_dt_s, round(near_d_m) FROM h").fetchall()}
    assert rows[1] == (True, True, 30.0, 44.0)
    assert rows[2][:2] == (False, True)       # 90 s / 0 m: only the looser tolerance
    assert rows[2][2] == -30.0                # nearest in time: the one 111 m away
    assert rows[3] == (False, False, None, None)  # leg ends of other devices never count


def test_help(fq: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        fq.main(["--help"])
    assert exc.value.code == 0
    assert "--geolife" in capsys.readouterr().out


def _shares(figures: dict[str, object]) -> list[float]:
    return [v for k, v in figures.items()
            if isinstance(v, float) and ("recall" in k or "spurious" in k or "unmatched" in k)]


def test_bench_on_a_small_simulation(fq: ModuleType, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert fq.main(["--devices", "2", "--days", "1", "--seed", "3", "--no-geolife",
                    "--scenario", "default", "shifted", "--misses", "3",
                    "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| figure |")
    result = json.loads(out.strip().splitlines()[-1])
    assert [r["data"] for r in result["runs"]] == ["sim-default", "sim-shifted"]
    for run in result["runs"]:
        fig = run["figures"]
        assert fig["parking_events"] >= 0
        assert fig["leg_ends"] >= 0
        assert all(0.0 <= s <= 1.0 for s in _shares(fig))
        assert sum(fig["leg_ends_by_true_mode"].values()) == fig["leg_ends"]
    # a second run reuses the stores in --work: nothing simulated again, same figures
    assert fq.main(["--devices", "2", "--days", "1", "--seed", "3", "--no-geolife",
                    "--scenario", "default", "shifted", "--work", str(tmp_path)]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert all(r["timings"]["prepare_s"] is None for r in again["runs"])
    assert [r["figures"] for r in again["runs"]] == [r["figures"] for r in result["runs"]]


def test_bench_on_geolife_mini(fq: ModuleType, geolife_mini: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert fq.main(["--scenario", "--geolife", str(geolife_mini), "--work",
                    str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (run,) = result["runs"]
    fig = run["figures"]
    assert fig["car_ends"] >= 20      # geolife-mini.zip has 28 car segments
    assert fig["car_ends_with_fix_within_300s"] <= fig["car_ends"]
    assert all(0.0 <= s <= 1.0 for s in _shares(fig))
