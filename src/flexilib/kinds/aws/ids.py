"""Invocation ids, made without a system call.

`str(uuid.uuid4())` reads 16 bytes from `os.urandom` (a system call) and
builds a UUID object: 3.2 us per id on the 2-core bench machine, and a
`lambda:` call needs two ids (the context's `aws_request_id` and the event's
`requestId`). These come from a generator of the process's own instead
(Mersenne Twister, seeded from `os.urandom` at import and again in every
forked worker, so workers never repeat each other's sequence): 1.0 us for the
UUID text, same format and version bits. They identify invocations in logs
and events; they are not secrets (enough of them let an observer predict
the next ones), so nothing may use them as one. The Runtime API's invocation
ids (`lambda-runtime:`) keep `uuid.uuid4()`.
"""

from __future__ import annotations

import os
import random
from binascii import b2a_base64

__all__ = ["random_base64", "random_uuid"]

_random = random.Random()  # private: a function's random.seed() cannot repeat our ids
os.register_at_fork(after_in_child=_random.seed)
# the variant digit of a random UUID: 10xx in binary
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def random_uuid() -> str:
    """A random (version 4) UUID as text, e.g. `1f9d1c2a-5b7e-4c3d-9a8b-0c1d2e3f4a5b`."""
    h = _random.randbytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def random_base64(size: int) -> str:
    """`size` random bytes in base64 (11 bytes: an HTTP API `requestId`, `JKJaXmPLvHcESHA=`)."""
    return b2a_base64(_random.getrandbits(size * 8).to_bytes(size), newline=False).decode("ascii")
