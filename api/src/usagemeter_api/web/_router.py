"""Routes serving the usage page and its static assets from the package directory."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).parent / "static"

# The page is cheap to fetch and must pick up a new release at once; assets revalidate by ETag.
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    # The sign-in link carries its token in the fragment, which browsers never send; this also keeps
    # the page's own address out of requests it makes to other sites.
    "Referrer-Policy": "no-referrer",
}
_ASSET_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

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
