"""``recommender serve``: the HTTP API and web page over one index (uvicorn + Starlette).

Binds 127.0.0.1 unless ``--host`` says otherwise; any other bind needs a
token (``--token`` or the ``RECOMMENDER_TOKEN`` environment variable), checked
on every request.
"""

from __future__ import annotations

import ipaddress
import os
import sys

__all__ = ["add_commands", "TOKEN_ENV"]

TOKEN_ENV = "RECOMMENDER_TOKEN"


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
    from ..serve.app import LOOPBACK_HOSTS

    token = args.token or os.environ.get(TOKEN_ENV) or None
    loopback = is_loopback(args.host)
    if not loopback and not token:
        print(f"error: --host {args.host} makes the index reachable from other machines: give a token "
              f"(--token TOKEN or the {TOKEN_ENV} environment variable), e.g. "
              f"{TOKEN_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe(24))')", file=sys.stderr)
        return 2
    app = create_app(args.index, token=token, cors_origins=args.cors_origin or (),
                     allowed_hosts=LOOPBACK_HOSTS if loopback and not token else None,
                     max_upload_mb=args.max_upload_mb)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{args.port}/" + ("?token=" + token if token and args.show_token else "")
    n = len(app.state.index.rec)
    print(f"serving {app.state.index.index_dir} ({n} tracks) on {url}  (API: /docs; Ctrl-C to stop)",
          file=sys.stderr, flush=True)
    if token and not args.show_token:
        print("open the page with ?token=TOKEN once (it sets a cookie); API clients send "
              "'Authorization: Bearer TOKEN'", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log,
                server_header=False)
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
    s.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    s.add_argument("--access-log", action="store_true", help="log every request")
    s.set_defaults(func=cmd_serve)
