"""The shard map: which pipeline worker owns a device.

A device belongs to one of :data:`SHARDS` shards by a stable hash of its id (the first 32 bits
of the MD5 of its UTF-8 bytes, the same in Python and in DuckDB's SQL, on every machine and
in every run; never Python's ``hash()``, which is salted per process), and shard ``s`` to
worker ``s % workers``. The late-fix rule depends on the order one engine sees a device's fixes
in, so a device must have exactly one owner at a time.

>>> shard_of("phone-1")
1776
>>> worker_of("phone-1", 2), worker_of("phone-2", 2)
(0, 1)
"""

from __future__ import annotations

import hashlib

SHARDS = 4096
"""shards in the map: fixed, so a device keeps its shard whatever the number of workers"""


def shard_of(device_id: str) -> int:
    """The device's shard, in ``[0, SHARDS)``."""
    return int(hashlib.md5(device_id.encode(), usedforsecurity=False).hexdigest()[:8], 16) \
        % SHARDS


def worker_of(device_id: str, workers: int) -> int:
    """The worker (of ``workers``) that owns the device."""
    return shard_of(device_id) % workers


def shard_sql(column: str = "device_id") -> str:
    """:func:`shard_of` as a DuckDB expression over a VARCHAR column."""
    return f"(('0x' || md5({column})[:8])::BIGINT % {SHARDS})"


def owned_sql(worker: int, workers: int, column: str = "device_id") -> str:
    """A DuckDB predicate: the rows whose device worker ``worker`` of ``workers`` owns."""
    if not 0 <= worker < workers:
        raise ValueError(f"worker {worker} of {workers}")
    return "TRUE" if workers == 1 else f"{shard_sql(column)} % {workers} = {worker}"


__all__ = ["SHARDS", "owned_sql", "shard_of", "shard_sql", "worker_of"]
