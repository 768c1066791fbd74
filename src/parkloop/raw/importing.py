"""What every import shares: storing a stream of batches in chunks and reporting on it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from parkloop.raw.events import EventBatch
from parkloop.raw.log import StoreResult, store_batches

if TYPE_CHECKING:
    from parkloop.store import Store


@dataclass
class ImportReport:
    """What an import did. ``set_aside`` lists inputs that could not be read at all (a file,
    or ``file:line`` of a batch), each with its reason; ``conflicts`` lists batch ids that hold
    other content already."""

    files: int = 0
    batches_stored: int = 0
    batches_duplicate: int = 0
    conflicts: list[str] = field(default_factory=list)
    events_stored: Counter[str] = field(default_factory=Counter)
    quarantined: int = 0
    quarantined_by_reason: Counter[str] = field(default_factory=Counter)
    set_aside: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every input was stored (or already was); quarantined events are fine."""
        return not self.conflicts and not self.set_aside

    def add(self, result: StoreResult) -> None:
        if result.status == "stored":
            self.batches_stored += 1
            self.events_stored.update(result.stored_by_kind)
            self.quarantined += result.n_quarantined
            self.quarantined_by_reason.update(result.reasons)
        elif result.status == "duplicate":
            self.batches_duplicate += 1
        else:
            self.conflicts.append(f"{result.device_id}/{result.batch_id}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files, "batches_stored": self.batches_stored,
            "batches_duplicate": self.batches_duplicate, "conflicts": self.conflicts,
            "events_stored": dict(self.events_stored), "quarantined": self.quarantined,
            "quarantined_by_reason": dict(self.quarantined_by_reason.most_common()),
            "set_aside": self.set_aside, "ok": self.ok,
        }

    def describe(self) -> str:
        events = ", ".join(f"{n:,} {k}" for k, n in sorted(self.events_stored.items()) if n)
        lines = [f"stored {self.batches_stored:,} new batches"
                 + (f" ({events} events)" if events else "")
                 + f"; {self.batches_duplicate:,} were already stored"]
        if self.quarantined:
            top = ", ".join(f"{r} {n:,}" for r, n in self.quarantined_by_reason.most_common(5))
            lines.append(f"quarantined {self.quarantined:,} event"
                         f"{'s' if self.quarantined != 1 else ''} ({top})")
        if self.conflicts:
            lines.append(f"refused {len(self.conflicts)} batches whose id holds other content: "
                         + ", ".join(self.conflicts[:5]) + (" ..." if len(self.conflicts) > 5
                                                            else ""))
        if self.set_aside:
            lines.append(f"set aside {len(self.set_aside)} unreadable inputs: "
                         + "; ".join(self.set_aside[:5])
                         + (" ..." if len(self.set_aside) > 5 else ""))
        return "\n".join(lines)


def store_stream(store: Store, batches: Iterable[EventBatch | str], report: ImportReport, *,
                 chunk_events: int = 400_000,
                 on_done: Callable[[int], None] | None = None) -> ImportReport:
    """Store batches in transactions of ~``chunk_events`` events; a ``str`` item is an input
    that could not be read (set aside with that reason). ``on_done(k)`` reports progress."""
    pending: list[EventBatch] = []
    size = 0

    def flush() -> None:
        nonlocal size
        if pending:
            for result in store_batches(store, pending):
                report.add(result)
            if on_done:
                on_done(len(pending))
            pending.clear()
            size = 0

    for item in batches:
        if isinstance(item, str):
            report.set_aside.append(item)
            if on_done:
                on_done(1)
            continue
        pending.append(item)
        size += item.n_events
        if size >= chunk_events:
            flush()
    flush()
    return report

