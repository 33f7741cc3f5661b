"""The end-user usage page: plain HTML, CSS and JavaScript modules that read the JSON API.

Include :data:`router` in the app (``app.include_router(web.router)``) to serve the page at ``/``
and its assets under ``/static/``. The page authenticates with the caller's own bearer token and
never asks for another user's data.
"""

from __future__ import annotations

from usagemeter_api.web._router import CONTENT_SECURITY_POLICY, STATIC_DIR, router

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_DIR", "router"]
