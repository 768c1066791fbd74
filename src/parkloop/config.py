"""Settings read from the environment, in this one place."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STORE = Path("parkloop-store")
STORE_ENV = "PARKLOOP_STORE"
DEFAULT_RULES = "v1"
"""the rules version used where none is named (defined here, not in :mod:`parkloop.facts`,
so that the CLI can name it without importing the facts engine)"""


def default_store_path() -> Path:
    """The store directory: ``$PARKLOOP_STORE`` if set, else ``./parkloop-store``."""
    return Path(os.environ.get(STORE_ENV) or DEFAULT_STORE)
