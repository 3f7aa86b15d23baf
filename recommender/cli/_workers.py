"""Worker processes of ``recommender serve --workers N``: uvicorn's supervisor, a socket per worker."""

from __future__ import annotations

import logging
import socket
import sys

from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from ..errors import RecommenderError
from ..serve import app as _app

__all__ = ["ReusePortWorkers", "listening_socket", "worker_app"]

logger = logging.getLogger(__name__)


def worker_app():
    """The app of one worker process (:func:`recommender.serve.app.app_from_env`, uvicorn's factory).

    A worker that cannot open the index (removed or damaged after ``recommender serve`` checked
    it) exits with uvicorn's startup-failure status, so the supervisor stops every worker and
    ``recommender serve`` exits 1, instead of restarting it forever (uvicorn treats only that
    status, or a ``TypeError`` from the factory, as a failed start).
    """
    try:
        return _app.app_from_env()
    except RecommenderError as e:
        print(f"error: a worker could not open the index: {e}", file=sys.stderr, flush=True)
    except Exception:
        logger.exception("a worker could not start")
    sys.exit(STARTUP_FAILURE)


def listening_socket(host: str, port: int, backlog: int, *, reuse_port: bool) -> socket.socket:
    """A TCP socket listening on ``host:port``, with ``TCP_NODELAY``.

    Accepted connections inherit ``TCP_NODELAY`` from the listening socket (Linux).  uvicorn
    binds a worker pool's socket without a protocol number, so asyncio does not set the option
    on the connections it accepts (it does for the sockets it creates itself), and a response
    written as head + body waited for the client's delayed ACK: 44 ms a request at 1 client
    (``benchmarks/bench_serve.py --workers 2``).  ``reuse_port``: ``SO_REUSEPORT`` set (the
    kernel spreads new connections over every socket bound to the port that way, by a hash of
    their addresses).

    Raises
    ------
    OSError
        The address cannot be bound (``EADDRINUSE``: the port is in use).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(backlog)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


class ReusePortWorkers(Multiprocess):
    """uvicorn's worker supervisor (health checks, restarts, signals) giving each worker process
    a listening socket of its own (``SO_REUSEPORT``).

    With uvicorn's one shared socket, the first worker to wake accepts every pending connection
    at once (asyncio accepts up to the backlog per wake-up): 100 keep-alive clients connecting
    together were served 99 by one worker and 1 by the other (counted with ``ss -tnp`` during
    ``benchmarks/bench_serve.py --workers 2``), so a second worker added little.  With a socket
    per worker the kernel spreads connections over them.  The port is first bound without
    ``SO_REUSEPORT``, so a port already in use (even by another server that set it) is refused
    as uvicorn refuses it, not silently shared.

    Parameters
    ----------
    config : uvicorn.Config
        With ``workers`` > 1 and the app as an import string (each worker imports it).

    Raises
    ------
    OSError
        The port is in use or the address cannot be bound.
    """

    def __init__(self, config):
        probe = listening_socket(config.host, config.port, 1, reuse_port=False)
        self._port = probe.getsockname()[1]  # --port 0: the port the system chose, for every worker
        probe.close()
        super().__init__(config, sockets=[])

    @property
    def port(self) -> int:
        """The port every worker listens on (the one the system chose for ``port=0``)."""
        return self._port

    @property
    def sockets(self) -> list:
        """A new listening socket each time uvicorn starts a worker process (it reads this then)."""
        return [listening_socket(self.config.host, self._port, self.config.backlog, reuse_port=True)]

    @sockets.setter
    def sockets(self, value) -> None:  # Multiprocess.__init__ assigns the shared list: not used
        pass
