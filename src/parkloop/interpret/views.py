"""How a held-out person meets the model: cold (nothing they said is known) and warm (what they
said about their first labelled segments is known, their later trips are scored).

The stored facts know every statement said before each decision. Evaluation varies that:

- **cold**: the person's leg ends rebuilt with no statement at all, as a stranger's would be;
- **warm**: rebuilt with the statements about their first :data:`WARM_SHARE` of labelled
  segments (in time order) only; the leg ends after the last of those segments are scored,
  against the segments that end after it.

Both are :func:`~parkloop.facts.pipeline.device_facts` runs over the same raw events with
fewer statements: the same code that builds the facts, so what is measured is what a person
would get.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parkloop.facts.inputs import read_device
from parkloop.facts.pipeline import device_facts
from parkloop.facts.said import Statements
from parkloop.facts.tables import SCHEMAS

if TYPE_CHECKING:
    from parkloop.facts.rules import RulesVersion
    from parkloop.store import Store

WARM_SHARE = 0.3
"""the share of a person's labelled segments (the earliest) known in the warm view"""


@dataclass(frozen=True)
class PersonView:
    """One person's leg ends, cold and warm (only those after ``warm_from_ms``)."""

    cold: pa.Table
    warm: pa.Table
    warm_from_ms: int
    """the end of the last labelled segment known in the warm view: later ones are judged"""


def warm_cutoff(label_end_ms: np.ndarray, share: float = WARM_SHARE) -> int:
    """The end of the last of the earliest ``share`` of a person's labelled segments (at least
    one of them); the smallest int64 without segments.

    >>> warm_cutoff(np.array([50, 10, 40, 20, 30, 60, 70, 80, 90, 100]))
    30
    """
    ends = np.sort(np.asarray(label_end_ms, np.int64))
    if not len(ends):
        return int(np.iinfo(np.int64).min)
    return int(ends[max(1, math.ceil(share * len(ends))) - 1])


def person_views(store: Store, rules: RulesVersion, devices: list[str],
                 share: float = WARM_SHARE, *, warm: bool = True) -> dict[str, PersonView]:
    """Cold and warm leg ends of each of ``devices`` under ``rules`` (without ``warm``, the
    cold ones only: the warm view is then empty)."""
    views = {}
    for device in devices:
        fixes, signals = read_device(store, device)
        ends = store.con.execute("SELECT end_ms FROM raw_label WHERE device_id = ?",
                                 [device]).fetchnumpy()["end_ms"]
        cutoff = warm_cutoff(np.asarray(ends, np.int64), share)
        said = signals.statements
        known = said.take((said.about_ms <= cutoff) & (said.said_ms <= cutoff))
        cold = device_facts(device, fixes, signals.with_statements(Statements.none()), rules)
        late = SCHEMAS["facts_leg_end"].empty_table()
        if warm:
            late = device_facts(device, fixes, signals.with_statements(known),
                                rules).tables["facts_leg_end"]
            late = late.filter(pc.greater(late.column("ended_ms"), cutoff))
        views[device] = PersonView(cold.tables["facts_leg_end"], late, cutoff)
    return views


__all__ = ["WARM_SHARE", "PersonView", "person_views", "warm_cutoff"]
