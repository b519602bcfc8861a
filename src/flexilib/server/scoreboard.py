"""The scoreboard: a page of memory the master and its workers share (Apache's name for it).

Each worker number has a record the worker writes and the master reads,
without a system call on either side: the worker stamps `beat` on every tick
of its event loop, so a master that sees no new stamp for `--worker-timeout`
seconds knows the loop is stuck (a handler spinning inline, a deadlock) and
replaces the worker, as gunicorn's arbiter does with its workers' tmp files.
The memory is an anonymous shared mapping made before the workers are
forked, so it needs no file and survives nothing but the process group.
"""

from __future__ import annotations

import mmap
import struct
import time

__all__ = ["Scoreboard"]

_RECORD = struct.Struct("d")  # monotonic time of the last tick


class Scoreboard:
    """One record per worker number."""

    def __init__(self, workers: int) -> None:
        self._memory = mmap.mmap(-1, max(1, workers) * _RECORD.size)

    def beat(self, number: int) -> None:
        """The worker's loop is alive (called by the worker)."""
        _RECORD.pack_into(self._memory, number * _RECORD.size, time.monotonic())

    def silent_for(self, number: int) -> float:
        """Seconds since worker `number` last beat (read by the master)."""
        (last,) = _RECORD.unpack_from(self._memory, number * _RECORD.size)
        return time.monotonic() - last
