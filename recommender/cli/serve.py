"""``recommender serve``: the HTTP API and web page over one index (uvicorn + Starlette).

Binds 127.0.0.1 unless ``--host`` says otherwise; any other bind needs a
token (``--token`` or the ``RECOMMENDER_TOKEN`` environment variable), checked
on every request.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys

__all__ = ["add_commands", "TOKEN_ENV"]

TOKEN_ENV = "RECOMMENDER_TOKEN"
#: uvicorn runs without its proxy-headers middleware (``proxy_headers=False``): nothing here reads
#: the client's address, and it was one more layer on every request.
#: uvicorn's event loop.  Python's own, not uvloop: with /similar answered on the loop and
#: 100 clients, uvloop served some connections far less often than others (a 2-ms handler:
#: p99 919 ms with uvloop vs 225 ms with asyncio at the same 470 req/s; `benchmarks/bench_serve.py`).
EVENT_LOOP = "asyncio"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only listens on this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cmd_serve(args) -> int:
    import uvicorn

    from ..serve import create_app
    from .._utils import cpu_count
    from ..serve.app import CONFIG_ENV, LOOPBACK_HOSTS

    token = args.token or os.environ.get(TOKEN_ENV) or None
    loopback = is_loopback(args.host)
    if not loopback and not token:
        print(f"error: --host {args.host} makes the index reachable from other machines: give a token "
              f"(--token TOKEN or the {TOKEN_ENV} environment variable), e.g. "
              f"{TOKEN_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe(24))')", file=sys.stderr)
        return 2
    options = dict(token=token, cors_origins=list(args.cors_origin or ()),
                   allowed_hosts=list(LOOPBACK_HOSTS) if loopback and not token else None,
                   max_upload_mb=args.max_upload_mb)
    most = 4 * cpu_count()  # each holds its own copy of the index
    if not 1 <= args.workers <= most:
        print(f"error: --workers {args.workers}: must be between 1 and {most} (4 per CPU)", file=sys.stderr)
        return 2
    if args.workers == 1:
        app = create_app(args.index, **options)
        n = len(app.state.index.rec)
    else:  # each worker process opens the index itself (uvicorn calls app_from_env there)
        from ..recommender import Recommender

        with Recommender(args.index) as rec:
            rec.catalog.generation  # noqa: B018  (CatalogError here when there is no index)
            n = len(rec)
        app = "recommender.cli._workers:worker_app"  # app_from_env; a failed start stops the workers
        os.environ[CONFIG_ENV] = json.dumps(dict(options, index_dir=os.path.abspath(os.path.expanduser(args.index))))
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{args.port}/" + ("?token=" + token if token and args.show_token else "")
    where = os.path.abspath(os.path.expanduser(args.index))
    print(f"serving {where} ({n} tracks) on {url}  (API: /docs; Ctrl-C to stop)"
          + (f"; {args.workers} worker processes" if args.workers > 1 else ""), file=sys.stderr, flush=True)
    if token and not args.show_token:
        print("open the page with ?token=TOKEN once (it sets a cookie); API clients send "
              "'Authorization: Bearer TOKEN'", file=sys.stderr, flush=True)
    if args.workers == 1:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log,
                    server_header=False, loop=EVENT_LOOP, proxy_headers=False, http=http_protocol())
        return 0
    return _run_workers(app, args)


def http_protocol():
    """uvicorn's ``http`` option: httptools writing each response in one piece
    (:class:`recommender.cli._http.CoalescingHttpToolsProtocol`), or ``"auto"`` without httptools."""
    try:
        from ._http import CoalescingHttpToolsProtocol
    except ImportError:
        return "auto"
    return CoalescingHttpToolsProtocol


def _run_workers(app: str, args) -> int:
    """``uvicorn.run(app, workers=N)`` with one listening socket per worker process and
    Nagle's algorithm off (:class:`recommender.cli._workers.ReusePortWorkers`)."""
    import uvicorn

    from ._workers import STARTUP_FAILURE, ReusePortWorkers

    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            access_log=args.access_log, server_header=False, loop=EVENT_LOOP, factory=True,
                            workers=args.workers, proxy_headers=False, http=http_protocol())
    try:
        workers = ReusePortWorkers(config)
        if args.port == 0:
            print(f"listening on port {workers.port}", file=sys.stderr, flush=True)
        workers.run()
    except OSError as e:  # the port in use, or a worker's socket not bound at a restart
        print(f"error: cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    if any(p.exitcode == STARTUP_FAILURE for p in workers.processes):  # uvicorn stopped them all
        print("error: a worker process could not start (its message is above)", file=sys.stderr)
        return 1
    return 0


def add_commands(sub) -> None:
    """Register ``serve`` on the ``recommender`` sub-parsers."""
    from ..recommender import DEFAULT_INDEX_DIR

    s = sub.add_parser("serve", help="HTTP API and web page to explore an index (http://127.0.0.1:8765/)")
    s.add_argument("--index", default=DEFAULT_INDEX_DIR)
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--token", default=None,
                   help=f"required on every request (default: ${TOKEN_ENV}); needed for any non-loopback --host")
    s.add_argument("--show-token", action="store_true", help="print the page URL with its ?token=")
    s.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="allow this origin's pages to call the API (repeatable; default: no CORS)")
    s.add_argument("--max-upload-mb", type=float, default=100.0, help="largest file /api/classify accepts (MB)")
    s.add_argument("--workers", type=int, default=1,
                   help="server processes (default 1). Each holds its own copy of the index in memory "
                        "(~0.4 GB per 100k tracks); on N cores up to N answer /similar side by side")
    s.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    s.add_argument("--access-log", action="store_true", help="log every request")
    s.set_defaults(func=cmd_serve)
