"""The facts of the GeoLife sample, built once per session for the checks that compare them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from parkloop.store import Store
from tests.conftest import once
from tests.facts.facts_digest import facts_digest


@pytest.fixture(scope="session")
def mini_facts_digest(geolife_mini_store: Path, tmp_path_factory: pytest.TempPathFactory
                      ) -> str:
    """The digest of geolife-mini's facts (both shipped rules), built here with the host's
    CPU features, once per run, on a copy of the run's GeoLife store (the same import as
    ``python -m tests.facts.facts_digest ZIP`` makes)."""

    def make(where: Path) -> None:
        shutil.copytree(geolife_mini_store, where / "store")
        with Store.open(where / "store") as store:
            (where / "digest").write_text(facts_digest(store))
        shutil.rmtree(where / "store")

    return (once(tmp_path_factory, "mini-facts-digest", make) / "digest").read_text()
