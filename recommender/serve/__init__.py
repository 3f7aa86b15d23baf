"""``recommender serve``: an HTTP API and a web page over one index.

:func:`create_app` builds the Starlette (ASGI) application; run it with
uvicorn (``recommender serve --index DIR``) or mount it in another ASGI app.
See :mod:`recommender.serve.api` for the endpoints and
:mod:`recommender.serve.app` for the security model.
"""

from .app import create_app

__all__ = ["create_app"]
