"""uvicorn's httptools protocol with each response written in one piece (``recommender serve``).

Importing this module needs httptools (``pip install '.[serve]'``): without it, ``ImportError``
and uvicorn's own protocol is used (:func:`recommender.cli.serve.http_protocol`).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpToolsProtocol"]


class _CoalescingTransport:
    """A transport whose writes made in one turn of the event loop reach the socket as one write.

    uvicorn writes a response as two writes (the head at ``http.response.start``, the body at
    ``http.response.body``): two ``send`` system calls and, with Nagle's algorithm off, two TCP
    segments the client wakes up for.  Here they are joined and written by a callback scheduled
    on the loop (the same turn's ready queue: no added wait).  Everything else is the real
    transport's: closing writes what is pending first; flow control sees the data one callback
    later, so at most one more chunk of a streamed file waits here.
    """

    __slots__ = ("_transport", "_pending", "_loop")

    def __init__(self, transport, loop):
        self._transport = transport
        self._pending: list = []
        self._loop = loop

    def write(self, data) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name):
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol`` writing through a :class:`_CoalescingTransport`.

    Measured (``wrk -t1 -c100`` for 20 s on ``/api/tracks/ID/similar`` of the 100k-track
    benchmark index, ``--workers 2``, 2 cores, two runs each, alternated): uvicorn's two writes
    3,216-3,275 req/s, p99 44.6-48.9 ms; one write 3,692-3,865 req/s, p99 34.4-46.9 ms.
    """

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.transport = _CoalescingTransport(self.transport, asyncio.get_running_loop())
