"""A small HTTP/1.1 upstream for the proxy tests, written on asyncio streams.

Run: `python httpecho.py NAME [PORT]`; it prints `port N` once listening.
It parses requests by hand (not with llhttp, so the proxy's parser is not
tested against itself) and answers by path:

- `/_stats`            JSON: connections that carried a request, requests seen (method and
                       target each); the test's own `/_stats` and `/open` calls are not counted
- `/big?size=N[&chunked=1]`  N bytes of `pattern()`, produced on the fly
- `/gate`              chunked: "first", then waits for a request to `/open`, then "second"
- `/open`              releases `/gate`
- `/sleep?s=S`         answers after S seconds
- `/truncate[?chunked=1]`  promises more body than it sends, then closes
- `/close-delimited`   a body ended by closing the connection (no length, not chunked)
- `/drop-next`         answers; the next request on this connection is dropped unanswered
- `/hop`               a response full of hop-by-hop headers
- `/status/NNN`        that status (no body for 1xx/204/304)
- `/reason`            `299 Custom Reason`
- `/continue`          a `100 Continue` first, then the answer
- anything else        JSON echo: name, method, target, headers, body length and sha256
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from urllib.parse import parse_qs, urlsplit

BLOCK = bytes(range(256)) * 256  # 64 KiB


def pattern(size: int):
    """`size` bytes of a fixed pattern, in blocks (the tests compute the same)."""
    while size > 0:
        piece = BLOCK if size >= len(BLOCK) else BLOCK[:size]
        size -= len(piece)
        yield piece


class State:
    def __init__(self, name: str) -> None:
        self.name = name
        self.connections = 0
        self.requests: list[list[str]] = []
        self.gate = asyncio.Event()


async def read_head(reader: asyncio.StreamReader):
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = raw.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
    return method, target, version, headers


def header(headers, name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name.lower():
            return value
    return None


async def read_body(reader: asyncio.StreamReader, headers) -> tuple[int, str, bool]:
    """Consume the body without keeping it: (length, sha256, was chunked)."""
    digest = hashlib.sha256()
    total = 0
    if (header(headers, "transfer-encoding") or "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return total, digest.hexdigest(), True
            remaining = size
            while remaining:
                data = await reader.read(min(remaining, 1 << 20))
                if not data:
                    raise ConnectionError("body cut short")
                digest.update(data)
                remaining -= len(data)
            total += size
            await reader.readexactly(2)
    remaining = int(header(headers, "content-length") or 0)
    while remaining:
        data = await reader.read(min(remaining, 1 << 20))
        if not data:
            raise ConnectionError("body cut short")
        digest.update(data)
        total += len(data)
        remaining -= len(data)
    return total, digest.hexdigest(), False


def head(status: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status}\r\n"] + [f"{n}: {v}\r\n" for n, v in headers] + ["\r\n"]
    return "".join(lines).encode("latin-1")


async def respond(state: State, writer: asyncio.StreamWriter, request, body) -> bool:
    """Answer one request; False when the connection must close afterwards."""
    method, target, version, headers = request
    parts = urlsplit(target)
    path, query = parts.path, parse_qs(parts.query)
    bodyless = method == "HEAD"
    if path == "/_stats":
        data = json.dumps({"connections": state.connections, "requests": state.requests})
        writer.write(head("200 OK", [("Content-Length", str(len(data)))]) + data.encode())
    elif path == "/big":
        size = int(query["size"][0])
        chunked = "chunked" in query
        framing = ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(size))
        writer.write(head("200 OK", [framing, ("Content-Type", "application/octet-stream")]))
        if not bodyless:
            for piece in pattern(size):
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                await writer.drain()
            if chunked:
                writer.write(b"0\r\n\r\n")
    elif path == "/gate":
        writer.write(head("200 OK", [("Transfer-Encoding", "chunked")]) + b"5\r\nfirst\r\n")
        await writer.drain()
        await state.gate.wait()
        state.gate.clear()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
    elif path == "/open":
        state.gate.set()
        writer.write(head("200 OK", [("Content-Length", "2")]) + b"ok")
    elif path == "/sleep":
        await asyncio.sleep(float(query["s"][0]))
        writer.write(head("200 OK", [("Content-Length", "5")]) + b"slept")
    elif path == "/truncate":
        if "chunked" in query:
            writer.write(head("200 OK", [("Transfer-Encoding", "chunked")]) + b"4\r\npart\r\n")
        else:
            writer.write(head("200 OK", [("Content-Length", "1000")]) + b"x" * 100)
        await writer.drain()
        return False
    elif path == "/close-delimited":
        writer.write(head("200 OK", [("Connection", "close")]) + b"until the end")
        return False
    elif path == "/hop":
        hops = [
            ("Connection", "X-Hop-Named, keep-alive"),
            ("X-Hop-Named", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authenticate", "Basic"),
            ("Trailer", "X-Checksum"),
            ("Upgrade", "h2c"),
            ("X-End-To-End", "kept"),
            ("Server", "httpecho"),
            ("Content-Length", "3"),
        ]
        writer.write(head("200 OK", hops) + b"hop")
    elif path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        size = "0" if status == 204 else "7"
        writer.write(head(f"{status} Whatever", [("Content-Length", size), ("ETag", '"v1"')]))
        if status not in (204, 304) and not bodyless:
            writer.write(b"status!")
    elif path == "/reason":
        writer.write(head("299 Custom Reason", [("Content-Length", "0")]))
    elif path == "/continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(head("200 OK", [("Content-Length", "9")]) + b"continued")
    else:
        length, sha, chunked = body
        data = json.dumps(
            {
                "name": state.name,
                "method": method,
                "target": target,
                "version": version,
                "headers": headers,
                "body_length": length,
                "body_sha256": sha,
                "body_chunked": chunked,
            }
        ).encode()
        writer.write(
            head(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
            )
        )
        if not bodyless:
            writer.write(data)
    await writer.drain()
    return (header(headers, "connection") or "").lower() != "close"


async def serve_connection(state: State, reader, writer) -> None:
    counted = drop_next = False
    try:
        while True:
            request = await read_head(reader)
            if request is None:
                break
            if urlsplit(request[1]).path not in ("/_stats", "/open"):
                state.requests.append([request[0], request[1]])
                if not counted:
                    counted = True
                    state.connections += 1
            if drop_next:
                break  # as if our idle timer closed the connection just as the request came
            body = await read_body(reader, request[3])
            drop_next = urlsplit(request[1]).path == "/drop-next"
            if not await respond(state, writer, request, body):
                break
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main() -> None:
    name = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    state = State(name)
    server = await asyncio.start_server(
        lambda r, w: serve_connection(state, r, w), "127.0.0.1", port, reuse_address=True
    )
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
