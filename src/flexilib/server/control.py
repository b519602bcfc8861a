"""Messages between the master and a worker, over a pipe: a 4-byte length, then a pickle.

The master is the one source of truth for the config: it validates a
config once and sends each worker the validated rules (`("rules", [...])`)
on SIGHUP or a config change; a worker started later is forked with them.
After them comes `("generation", n)`, which the worker answers on its report
pipe (worker -> master, same framing) with `("serving", n)`; its counts go
that way too, once a tick (`("stats", {...})`, see `server/worker.py`).
Each pipe carries only what flexilib's own processes made, so pickle is
safe here.
"""

from __future__ import annotations

import pickle
import struct

__all__ = ["Decoder", "encode"]

_LENGTH = struct.Struct(">I")


def encode(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


class Decoder:
    """Bytes in, whole messages out."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[object]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(self._buffer)
            end = _LENGTH.size + size
            if len(self._buffer) < end:
                break
            messages.append(pickle.loads(bytes(self._buffer[_LENGTH.size : end])))
            del self._buffer[:end]
        return messages
