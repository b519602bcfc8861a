"""The scoreboard: a page of memory the master and its workers share (Apache's name for it).

Each worker number has a record the worker writes and the master reads,
without a system call on either side: the worker stamps `beat` on every tick
of its event loop, so a master that sees no new stamp for `--worker-timeout`
seconds knows the loop is stuck (a handler spinning inline, a deadlock) and
replaces the worker, as gunicorn's arbiter does with its workers' tmp files.
Each record also has `CELLS` crash cells: every thread that calls a native
library writes the library's marker (`HandlerSpec.marker`) into its own
cell for the length of the call, from C (`_native.set_crash_board`). When a
worker dies of a signal, the master reads which libraries it was inside and
quarantines them (`master.py`). The memory is an anonymous shared mapping
made before the workers are forked, so it needs no file and survives
nothing but the process group.
"""

from __future__ import annotations

import ctypes
import mmap
import struct
import time

__all__ = ["CELLS", "Scoreboard"]

CELLS = 128  # threads per worker that get a cell of their own (more share the last one)
_BEAT = struct.Struct("d")  # monotonic time of the last tick
_CELLS = struct.Struct(f"{CELLS}i")
_RECORD = _BEAT.size + _CELLS.size


class Scoreboard:
    """One record per worker number."""

    def __init__(self, workers: int) -> None:
        self._memory = mmap.mmap(-1, max(1, workers) * _RECORD)

    def beat(self, number: int) -> None:
        """The worker's loop is alive (called by the worker)."""
        _BEAT.pack_into(self._memory, number * _RECORD, time.monotonic())

    def silent_for(self, number: int) -> float:
        """Seconds since worker `number` last beat (read by the master)."""
        (last,) = _BEAT.unpack_from(self._memory, number * _RECORD)
        return time.monotonic() - last

    def cells_address(self, number: int) -> int:
        """Where worker `number`'s crash cells are, for `_native.set_crash_board`."""
        base = ctypes.addressof(ctypes.c_char.from_buffer(self._memory))
        return base + number * _RECORD + _BEAT.size

    def marked(self, number: int) -> set[int]:
        """The markers in worker `number`'s cells: the libraries it is inside (read, then cleared)."""
        offset = number * _RECORD + _BEAT.size
        marks = {m for m in _CELLS.unpack_from(self._memory, offset) if m}
        _CELLS.pack_into(self._memory, offset, *([0] * CELLS))
        return marks
