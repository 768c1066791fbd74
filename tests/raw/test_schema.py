"""The documented raw schema is the implemented one."""

from __future__ import annotations

from pathlib import Path

from parkloop.raw.schema import KINDS, markdown
from parkloop.store import Store

DOC = Path(__file__).resolve().parents[2] / "docs" / "raw-schema.md"


def test_docs_show_the_schema_the_code_defines() -> None:
    assert markdown() in DOC.read_text(encoding="utf-8"), \
        "docs/raw-schema.md is stale: paste parkloop.raw.schema.markdown() into it"


def test_tables_have_the_documented_columns(store: Store) -> None:
    for kind in KINDS:
        cols = [r[0] for r in store.con.execute(f"DESCRIBE {kind.table}").fetchall()]
        assert cols == ["device_id", "batch_no", *kind.column_names]


def test_store_records_its_schema_version(store: Store) -> None:
    assert store.schema_version == 1
