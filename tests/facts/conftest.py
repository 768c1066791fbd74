"""The facts of the GeoLife sample, built once per session for the checks that compare them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import once
from tests.facts.facts_digest import zip_digest


@pytest.fixture(scope="session")
def mini_facts_digest(geolife_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The digest of geolife-mini's facts (both shipped rules), built here with the host's
    CPU features, once per run."""

    def make(where: Path) -> None:
        (where / "digest").write_text(zip_digest(geolife_mini))

    return (once(tmp_path_factory, "mini-facts-digest", make) / "digest").read_text()
