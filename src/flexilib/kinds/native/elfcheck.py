"""Refusing an ELF file cut short, before `dlopen` sees it.

`dlopen` maps each segment at the length the program headers give, whether
or not the file is that long; the first touch of a page past the end then
kills the whole process with SIGBUS. A library copied while a build was still
writing it, or truncated, is exactly that. Checking that every segment lies
within the file turns it into a load error, and the old version keeps serving.
"""

from __future__ import annotations

import os
import struct

__all__ = ["incomplete"]

# ELF class -> (header size, e_phoff/e_phentsize/e_phnum layout, program header layout)
_LAYOUTS = {
    1: (52, "28xI10xHH", "II8xI"),  # 32-bit: p_type, p_offset, p_filesz
    2: (64, "32xQ14xHH", "I4xQ16xQ"),  # 64-bit
}


def incomplete(path: str) -> str | None:
    """Why the ELF file at `path` is cut short, or None (also for non-ELF: dlopen says why)."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        head = file.read(64)
        if len(head) < 16 or head[:4] != b"\x7fELF" or head[4] not in _LAYOUTS:
            return None
        order = "<" if head[5] == 1 else ">"
        header_size, header, program = _LAYOUTS[head[4]]
        if len(head) < header_size:
            return f"truncated ELF file ({size} bytes, the header alone is {header_size})"
        phoff, phentsize, phnum = struct.unpack_from(order + header, head)
        end = phoff + phentsize * phnum
        if end > size:
            return f"truncated ELF file ({size} bytes, program headers end at {end})"
        entry = struct.Struct(order + program)
        if phnum and phentsize < entry.size:
            return f"malformed ELF file (program header entries of {phentsize} bytes)"
        file.seek(phoff)
        table = file.read(phentsize * phnum)
    for i in range(phnum):
        _, offset, length = entry.unpack_from(table, i * phentsize)
        if length and offset + length > size:
            return f"truncated ELF file ({size} bytes, a segment ends at {offset + length})"
    return None
