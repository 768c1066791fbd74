"""A process that ingests batches forever, printing ``ACK batch_id n_events`` after each
``store_batch`` returns; the durability test kills it with SIGKILL at random moments."""

from __future__ import annotations

import sys

import numpy as np

from parkloop.raw.events import EventBatch
from parkloop.raw.log import store_batch
from parkloop.store import Store

NOW = 1_767_600_000_000


def batch(i: int) -> EventBatch:
    rng = np.random.default_rng(i)
    n = int(rng.integers(1, 3000))
    lat = rng.uniform(-90, 90, n)
    lat[rng.random(n) < 0.05] = 999.0  # some invalid events: quarantined, still acknowledged
    return EventBatch.of("phone-durable", f"b{i:07d}", "api", {"fix": {
        "seq": np.arange(n), "t_ms": NOW - rng.integers(0, 10**9, n), "lat": lat,
        "lon": rng.uniform(-180, 180, n), "accuracy_m": rng.uniform(1, 50, n)}})


def main() -> None:
    path, start = sys.argv[1], int(sys.argv[2])
    with Store.create(path) as store:
        for i in range(start, start + 10**6):
            if i > start and i % 7 == 0:  # a retry of an earlier batch: a duplicate
                store_batch(store, batch(i - 3), received_ms=NOW)
            b = batch(i)
            store_batch(store, b, received_ms=NOW)
            print(f"ACK {b.batch_id} {b.n_events}", flush=True)


if __name__ == "__main__":
    main()
