"""A change of any step's output must come with a new ENGINE_VERSION (part of every rules
identity), or facts built before and after would carry the same identity.

The digest covers every bit of every value (see tests/facts/facts_digest.py), and the values
are the same on every machine (tests/facts/test_cpu_determinism.py; docs/facts.md), so a
failure here is a change of the facts, never of a CPU or a library's byte layout."""

from __future__ import annotations

import json
from pathlib import Path

from parkloop.facts import rules as R

GOLDEN = Path(__file__).with_name("engine_golden.json")


def test_engine_output_is_pinned_to_its_version(mini_facts_digest: str) -> None:
    digest = mini_facts_digest
    golden = json.loads(GOLDEN.read_text())
    assert golden["engine_version"] == R.ENGINE_VERSION, (
        f"ENGINE_VERSION is {R.ENGINE_VERSION!r}: record its output in {GOLDEN.name}: "
        f'{{"engine_version": "{R.ENGINE_VERSION}", "digest": "{digest}"}}')
    assert digest == golden["digest"], (
        "the facts engine's output changed: bump ENGINE_VERSION in facts/rules.py and record "
        f'{{"engine_version": "<new>", "digest": "{digest}"}} in {GOLDEN.name}')
