"""The ASGI application of ``recommender serve`` (Starlette), for uvicorn or for embedding.

>>> from recommender.serve import create_app           # doctest: +SKIP
>>> app = create_app("indexes/mine")                    # doctest: +SKIP
>>> import uvicorn; uvicorn.run(app, port=8765)         # doctest: +SKIP

Security model
--------------
* The index is only read.  Audio is streamed by track id: the file path comes
  from the catalog, never from the client (see :meth:`IndexState.audio_file`).
* ``token``: when set, every request must carry it (``Authorization: Bearer
  TOKEN``, ``?token=TOKEN`` or the ``recommender_token`` cookie that a page
  opened with ``?token=`` receives); compared in constant time.  The CLI
  requires one for any bind other than loopback.
* ``allowed_hosts``: ``Host`` headers accepted (the CLI passes the loopback
  names on a loopback bind, against DNS rebinding).
* No CORS headers unless ``cors_origins`` is given.
* Every response carries ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  no-referrer``, ``X-Frame-Options: DENY`` and a same-origin
  Content-Security-Policy (the page loads nothing from elsewhere).
"""

from __future__ import annotations

import hmac
import logging
import os
import re
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.schemas import SchemaGenerator
from starlette.staticfiles import StaticFiles

from ..errors import AudioError, CatalogError, IndexFileError, NotInIndexError, ParameterError, RecommenderError
from . import api
from .responses import HTTPError, error_response, json_response
from .state import IndexState

logger = logging.getLogger(__name__)

__all__ = ["create_app", "app_from_env", "CONFIG_ENV", "DEFAULT_MAX_UPLOAD_MB", "LOOPBACK_HOSTS", "TOKEN_COOKIE"]

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
#: Largest upload accepted by ``/api/classify`` by default (MB).
DEFAULT_MAX_UPLOAD_MB = 100
#: ``Host`` names accepted on a loopback bind.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
TOKEN_COOKIE = "recommender_token"
#: Environment variable holding :func:`create_app`'s keyword arguments as JSON, read by
#: :func:`app_from_env` in each worker process of ``recommender serve --workers N``.
CONFIG_ENV = "RECOMMENDER_SERVE_CONFIG"
CSP = ("default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CSP.encode()),
]


class _Guard:
    """ASGI middleware: token check on every request, security headers on every response."""

    def __init__(self, app, token: str | None = None):
        self.app = app
        self.token = token.encode() if token else None

    def _presented(self, scope):
        """``(token bytes or None, came from the query string)``."""
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            return auth[7:].strip(), False
        qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "token" in qs:
            return qs["token"][-1].encode("latin-1"), True
        raw = headers.get(b"cookie")
        if raw:
            c = SimpleCookie()
            try:
                c.load(raw.decode("latin-1"))
            except Exception:  # a malformed cookie header is just no token
                return None, False
            if TOKEN_COOKIE in c:
                return c[TOKEN_COOKIE].value.encode("latin-1"), False
        return None, False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        set_cookie = False
        if self.token is not None:
            given, from_query = self._presented(scope)
            if given is None or not hmac.compare_digest(given, self.token):
                resp = error_response(401, "missing or wrong token: open the page with ?token=TOKEN or send "
                                           "'Authorization: Bearer TOKEN'")
                resp.headers["www-authenticate"] = "Bearer"
                return await resp(scope, receive, self._with_headers(send, False))
            set_cookie = from_query
        await self.app(scope, receive, self._with_headers(send, set_cookie))

    def _with_headers(self, send, set_cookie):
        async def wrapped(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in _SECURITY_HEADERS if k not in names]
                if set_cookie:
                    headers.append((b"set-cookie", f"{TOKEN_COOKIE}={self.token.decode('latin-1')}; "
                                                   "HttpOnly; SameSite=Strict; Path=/".encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped


# --------------------------------------------------------------------------- errors
def _status_of(exc: Exception) -> int:
    if isinstance(exc, HTTPError):
        return exc.status
    if isinstance(exc, NotInIndexError):
        return 404
    if isinstance(exc, (ParameterError, AudioError)):
        return 400
    if isinstance(exc, (CatalogError, IndexFileError)):
        return 503
    return 400


def _message(exc: Exception) -> str:
    if isinstance(exc, HTTPError):
        return exc.message
    if isinstance(exc, AudioError):  # the upload's temporary path means nothing to the client
        return f"the uploaded file could not be decoded: {exc.reason}"
    return str(exc)


def _hide_index_dir(message: str, index_dir) -> str:
    """``message`` with the server's index directory (and any path inside it) said as "the index"."""
    if not index_dir:
        return message
    end = r"\s'\",;:)"  # what ends a path in a message
    out = re.sub(re.escape(str(index_dir).rstrip(os.sep)) + rf"(?:/[^{end}]*)?(?![^{end}])", "the index", message)
    return re.sub(r"\bthe index the index\b", "the index", out)


async def _on_recommender_error(request, exc):
    status = _status_of(exc)
    message = _message(exc)
    state = getattr(request.app.state, "index", None)
    public = _hide_index_dir(message, getattr(state, "index_dir", None))
    if status >= 500:
        logger.warning("%s %s: %s", request.method, request.url.path, message)
    elif public != message:  # the full text, with the server's paths, only in the log
        logger.info("%s %s: %s", request.method, request.url.path, message)
    return error_response(status, public)


async def _on_http_exception(request, exc):
    msg = {404: f"no such endpoint: {request.url.path} (see /docs)",
           405: f"method {request.method} not allowed on {request.url.path}"}.get(exc.status_code, exc.detail)
    return error_response(exc.status_code, msg)


async def _on_server_error(request, exc):
    logger.exception("%s %s failed", request.method, request.url.path)
    return error_response(500, "internal error (see the server's log)")


# --------------------------------------------------------------------------- pages
_schemas = SchemaGenerator({
    "openapi": "3.0.3",
    "info": {"title": "recommender", "version": "1",
             "description": "Content-based music recommendation over one index: search, similar tracks, radio, "
                            "paths, the collection map, classification of an upload and audio streaming."},
})


def openapi(request):
    """The OpenAPI document of the JSON API."""
    schema = _schemas.get_schema(routes=request.app.routes)
    if request.app.state.token_required:
        schema["components"] = {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
        schema["security"] = [{"bearer": []}]
    return json_response(schema)


def _page(name):
    def endpoint(request):
        return FileResponse(os.path.join(STATIC_DIR, name), media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    endpoint.__name__ = f"page_{name.split('.')[0]}"
    return endpoint


# --------------------------------------------------------------------------- factory
def create_app(index_dir, *, token: str | None = None, cors_origins=(), allowed_hosts=None,
               max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB) -> Starlette:
    """The HTTP API and web page over one index, as a Starlette (ASGI) application.

    Parameters
    ----------
    index_dir : path-like
        An existing index (read only; reloaded when another process changes it).
    token : str, optional
        Required on every request when given.
    cors_origins : iterable of str
        Origins allowed to call the API from their pages (none by default: no CORS headers).
    allowed_hosts : iterable of str, optional
        Accepted ``Host`` headers (default: any).
    max_upload_mb : float
        Largest file ``/api/classify`` accepts, in MB (413 beyond).

    Returns
    -------
    starlette.applications.Starlette
        ``app.state.index`` is the :class:`~recommender.serve.state.IndexState`.

    Raises
    ------
    CatalogError
        No index in ``index_dir``.
    ParameterError
        ``max_upload_mb`` not positive, or an empty token.
    """
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    from .._utils import check_number

    check_number("max_upload_mb", max_upload_mb, min=0, min_inclusive=False)
    if token is not None and not str(token).strip():
        raise ParameterError("token: must not be empty")
    state = IndexState(index_dir)
    routes = [Route(p, fn, methods=m) for p, fn, m in api.ENDPOINTS]
    routes += [
        Route("/", _page("index.html"), include_in_schema=False),
        Route("/docs", _page("docs.html"), include_in_schema=False),
        Route("/openapi.json", openapi, include_in_schema=False),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    middleware = []
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    middleware.append(Middleware(_Guard, token=token))
    origins = list(cors_origins or ())
    if origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                                     allow_headers=["Authorization", "Content-Type", "Range"]))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={RecommenderError: _on_recommender_error, HTTPError: _on_recommender_error,
                            HTTPException: _on_http_exception, Exception: _on_server_error},
    )
    app.state.index = state
    app.state.token_required = token is not None
    app.state.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
    return app


def app_from_env() -> Starlette:
    """:func:`create_app` with the keyword arguments in the :data:`CONFIG_ENV` environment variable
    (JSON): the factory uvicorn calls in each worker process (``recommender serve --workers N``;
    ``uvicorn --factory recommender.serve.app:app_from_env``).

    Raises
    ------
    ParameterError
        The variable is missing or is not a JSON object.
    CatalogError
        No index in its ``index_dir``.
    """
    import json

    try:
        kwargs = json.loads(os.environ[CONFIG_ENV])
    except (KeyError, ValueError):
        raise ParameterError(f"{CONFIG_ENV}: must hold create_app's arguments as a JSON object") from None
    if not isinstance(kwargs, dict) or "index_dir" not in kwargs:
        raise ParameterError(f"{CONFIG_ENV}: must be a JSON object with 'index_dir'")
    return create_app(kwargs.pop("index_dir"), **kwargs)
