"""parkloop: phone sensor streams -> deterministic facts -> versioned interpretations.

Layers (see DESIGN.md): :mod:`parkloop.raw` (append-only events), :mod:`parkloop.facts`,
:mod:`parkloop.interpret`, :mod:`parkloop.serve`, :mod:`parkloop.loop`; the phone simulator in
:mod:`parkloop.simulate` writes raw events only.
"""

from importlib.metadata import version as _version

from parkloop.errors import ParkloopError
from parkloop.store import Store

__version__ = _version("parkloop")

__all__ = ["ParkloopError", "Store", "__version__"]
