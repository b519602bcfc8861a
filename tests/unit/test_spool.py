"""The proxy's response spool: order kept across memory and file, full when both are."""

from __future__ import annotations

import asyncio

from flexilib.kinds.proxy.spool import Spool


async def _drain(spool: Spool) -> bytes:
    out = []
    while (piece := await spool.get()) is not None:
        out.append(piece)
    return b"".join(out)


def test_order_is_kept_across_memory_and_file():
    async def run() -> None:
        spool = Spool(asyncio.get_running_loop(), memory=10, disk=1000)
        pieces = [bytes([65 + i]) * 4 for i in range(20)]
        for piece in pieces[:10]:
            spool.put(piece)
        assert spool.pending == 40 and not spool.full()
        assert await spool.get() == pieces[0]  # from memory
        for piece in pieces[10:]:
            spool.put(piece)
        spool.end()
        assert await _drain(spool) == b"".join(pieces[1:])
        spool.close()

    asyncio.run(run())


def test_full_when_both_are_full_and_room_once_the_client_reads():
    async def run() -> None:
        spool = Spool(asyncio.get_running_loop(), memory=4, disk=8)
        for _ in range(3):
            spool.put(b"abcd")
        assert spool.full()
        waiter = asyncio.ensure_future(spool.room())
        await asyncio.sleep(0)
        assert not waiter.done()
        await spool.get()
        await spool.get()
        await asyncio.wait_for(waiter, 5)
        spool.close()

    asyncio.run(run())


def test_without_a_file_memory_is_the_limit():
    async def run() -> None:
        spool = Spool(asyncio.get_running_loop(), memory=4, disk=0)
        spool.put(b"abcd")
        assert spool.full()
        spool.end()
        assert await _drain(spool) == b"abcd"

    asyncio.run(run())
