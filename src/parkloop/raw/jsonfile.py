"""Import batches of events from a JSON or JSON Lines file (the REST API's batch format).

A file holds one batch object, a JSON array of them, or one per line (JSON Lines)::

    {"device_id": "phone-1", "batch_id": "2026-01-05T08:00-0001",
     "events": [{"kind": "fix", "t": "2026-01-05T08:00:00Z", "lat": 52.52, "lon": 13.40}]}

A batch that cannot be read or keyed (bad JSON, no usable device or batch id) is set aside with
its line number and reason; the events of readable batches are validated as usual.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parkloop.errors import InvalidBatch, SourceError
from parkloop.raw.events import EventBatch, parse_events
from parkloop.raw.importing import ImportReport, store_stream

if TYPE_CHECKING:
    from parkloop.store import Store


def read_text(path: Path) -> str:
    """The file's text, or a :class:`SourceError` saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None


def read_batches(path: Path, text: str | None = None) -> Iterator[EventBatch | str]:
    """Batches of a JSON/JSONL file, or a ``"file:line: reason"`` string for each unreadable
    one."""
    text = read_text(path) if text is None else text
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
        items: list[tuple[int, Any]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                items.append((number, _Unreadable(f"not JSON ({exc.msg})")))
    else:
        items = [(1, b) for b in whole] if isinstance(whole, list) else [(1, whole)]
    for number, item in items:
        where = f"{path}:{number}"
        if isinstance(item, _Unreadable):
            yield f"{where}: {item.reason}"
            continue
        if not isinstance(item, dict) or not isinstance(item.get("events"), list):
            yield f"{where}: expected an object with device_id, batch_id and an events list"
            continue
        try:
            yield parse_events(item.get("device_id"), item.get("batch_id"),  # type: ignore[arg-type]
                               item["events"], source="file")
        except InvalidBatch as exc:
            yield f"{where}: {exc}"


class _Unreadable:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def import_events(store: Store, path: Path | str, *, text: str | None = None,
                  on_done: Callable[[int], None] | None = None) -> ImportReport:
    """Import every batch of a JSON/JSONL file (or of its already read ``text``)."""
    return store_stream(store, read_batches(Path(path), text), ImportReport(files=1),
                        on_done=on_done)
