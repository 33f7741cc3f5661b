"""Routes serving the usage page and its static assets from the package directory."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).parent / "static"

# The page may only load its own assets and talk to its own origin: even if a crafted link got past
# the page's own checks, the browser refuses to send the token anywhere else. No inline script or
# style is allowed, and no other site may frame the page.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

# Everything revalidates on each load (assets by ETag), so a new release is picked up at once.
_ASSET_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
}
_PAGE_HEADERS = {
    **_ASSET_HEADERS,
    # The sign-in link carries its token in the fragment, which browsers never send; this also keeps
    # the page's address (with its query) out of every request the page makes.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

router = APIRouter(tags=["page"])
_assets = StaticFiles(directory=STATIC_DIR)


@router.get("/", include_in_schema=False)
def usage_page() -> FileResponse:
    """The usage page."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


@router.get("/static/{path:path}", include_in_schema=False)
async def static_asset(path: str, request: Request) -> Response:
    """A stylesheet, script module or image of the page; 404 for anything outside the asset directory."""
    if not path or path == "index.html":
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such asset")
    response = await _assets.get_response(path, request.scope)
    response.headers.update(_ASSET_HEADERS)
    return response
