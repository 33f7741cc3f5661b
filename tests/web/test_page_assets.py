"""The page and its assets as the router serves them (no browser needed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from usagemeter_api.web import STATIC_DIR, router


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(router)
    with TestClient(app) as test_client:
        yield test_client


def test_page_is_served_at_the_root_uncached(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert '<script type="module" src="static/main.js">' in response.text


@pytest.mark.parametrize(
    ("path", "media_type"),
    [("main.js", "javascript"), ("i18n.js", "javascript"), ("app.css", "text/css")],
)
def test_assets_are_served_with_their_media_type(client: TestClient, path: str, media_type: str) -> None:
    response = client.get(f"/static/{path}")
    assert response.status_code == 200
    assert media_type in response.headers["content-type"]
    assert response.content == (STATIC_DIR / path).read_bytes()


@pytest.mark.parametrize(
    "path", ["/static/", "/static/missing.js", "/static/../_router.py", "/static/%2e%2e/_router.py"]
)
def test_unknown_or_outside_paths_are_not_found(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_every_asset_the_page_imports_exists() -> None:
    modules = {path.name for path in STATIC_DIR.glob("*.js")}
    for module in modules:
        text = (STATIC_DIR / module).read_text(encoding="utf-8")
        for line in text.splitlines():
            if line.startswith("import ") and " from " in line:
                target = line.rsplit(" from ", 1)[1].strip(' ";').removeprefix("./")
                assert target in modules, f"{module} imports missing {target}"
