"""``python -m parkloop.loop.worker STORE``: one loop pass over a server's mirror, in a process
of its own (see :mod:`parkloop.loop.mirror`). The pass's record goes to the store's audit
log, and to stdout as JSON; the server's pipeline notices a publish by itself."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from parkloop.loop.mirror import mirror_path
from parkloop.loop.run import run_pass
from parkloop.store import Store

NICENESS = 10
"""the worker yields the CPU to the server's requests"""


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m parkloop.loop.worker STORE", file=sys.stderr)
        return 2
    home = Path(argv[0])
    os.nice(NICENESS)
    with Store.open(mirror_path(home)) as store:
        record = run_pass(store, home, actor="server")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
