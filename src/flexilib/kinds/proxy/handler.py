"""`PREFIX = http://host:port[/base] [more URLs...] [options]`: the reverse proxy target kind.

A `stream` handler: it starts as soon as the request's header section is in,
copies the body upstream as it arrives and the response back as it comes
(see `flexilib.proxy` for the parts and README "Reverse proxy" for the
user-visible behaviour). Connection pools belong to the worker's event loop,
so they are made on the first request, not in `load()` (a worker thread).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from flexilib.config import HandlerSpec
from flexilib.kinds.proxy.forward import Proxy
from flexilib.kinds.proxy.options import ProxyOptions, parse_options
from flexilib.kinds.proxy.upstream import Upstream, parse_upstream
from flexilib.request import Request
from flexilib.runtime.handler import Handler, Stream

__all__ = ["ProxyHandler"]


class ProxyHandler(Handler):
    mode = "stream"
    options: ClassVar[frozenset[str]] = frozenset(ProxyOptions.__dataclass_fields__)

    def __init__(self, spec: HandlerSpec) -> None:
        super().__init__(spec)
        self.settings = parse_options(spec.options)
        self._upstreams: list[Upstream] = []
        self._proxy: Proxy | None = None

    @classmethod
    def validate(cls, spec: HandlerSpec) -> None:
        """Raise ValueError for a bad URL, an unknown option or a bad value."""
        parse_options(spec.options)
        for url in spec.path.split():
            parse_upstream(url)

    def load(self) -> None:
        self._upstreams = [Upstream(url) for url in self.spec.path.split()]

    async def stream(self, request: Request, stream: Stream) -> None:
        proxy = self._proxy
        if proxy is None:
            loop = asyncio.get_running_loop()
            proxy = self._proxy = Proxy(self._upstreams, self.settings, loop)
        await proxy.forward(request, stream)

    def close(self) -> None:
        if self._proxy is not None:
            self._proxy.close()
