"""The same facts, bit for bit, whatever the CPU features the maths libraries use.

NumPy dispatches its loops by CPU feature (``NPY_DISABLE_CPU_FEATURES`` turns the dispatched
ones off, leaving its baseline) and Numba compiles for the host CPU (``NUMBA_CPU_NAME=generic``
compiles for a plain x86-64). Facts built each way must hash alike; docs/facts.md says why
they do (no libm, no SIMD maths: ``facts/trig.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

try:  # the features NumPy dispatches to at run time, by the names its version uses
    from numpy._core._multiarray_umath import __cpu_dispatch__
except ImportError:  # NumPy 1.x
    from numpy.core._multiarray_umath import __cpu_dispatch__

ROOT = Path(__file__).resolve().parents[2]
GEOLIFE_DEV = SHARED_DATA / "geolife" / "geolife-dev.zip"

NUMPY_BASELINE = {"NPY_DISABLE_CPU_FEATURES": " ".join(__cpu_dispatch__)}
NUMBA_GENERIC = {"NUMBA_CPU_NAME": "generic"}
SETTINGS = {"numpy-baseline": NUMPY_BASELINE, "numba-generic": NUMBA_GENERIC}


def digests_under(settings: dict[str, dict[str, str]], zip_path: Path) -> dict[str, str]:
    """The facts' digest of zip_path built in a subprocess under each of settings (run side
    by side)."""
    procs = {name: subprocess.Popen(
        [sys.executable, "-m", "tests.facts.facts_digest", str(zip_path)], cwd=ROOT,
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, env in settings.items()}
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=1800)
        assert proc.returncode == 0, f"{name}: {stderr}"
        out[name] = stdout.strip()
    return out


def test_facts_are_identical_under_every_cpu_setting(mini_facts_digest: str,
                                                     geolife_mini: Path) -> None:
    other = digests_under(SETTINGS, geolife_mini)
    assert other == dict.fromkeys(SETTINGS, mini_facts_digest)


@pytest.mark.slow
def test_geolife_dev_facts_are_identical_under_every_cpu_setting() -> None:
    if not GEOLIFE_DEV.is_file():
        if os.environ.get("PARKLOOP_REQUIRE_DATA"):
            pytest.fail(f"PARKLOOP_REQUIRE_DATA is set but {GEOLIFE_DEV} is missing")
        pytest.skip(f"{GEOLIFE_DEV} not found (it lives in ../shared/data beside the checkout)")
    got = digests_under({"host": {}, **SETTINGS}, GEOLIFE_DEV)
    assert got == dict.fromkeys(got, got["host"])
