"""The page and its assets as the router serves them (no browser needed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from usagemeter_api.web import CONTENT_SECURITY_POLICY, STATIC_DIR, router


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


@pytest.mark.parametrize("path", ["/", "/static/main.js", "/static/app.css"])
def test_page_and_assets_carry_the_security_headers(client: TestClient, path: str) -> None:
    headers = client.get(path).headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"


def test_content_security_policy_keeps_the_page_to_its_own_origin() -> None:
    directives = dict(directive.split(" ", 1) for directive in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


def test_page_refuses_framing_and_referrers(client: TestClient) -> None:
    headers = client.get("/").headers
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"


class _InlineFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        self.inline += [f"<{tag} {name}>" for name in names if name == "style" or name.startswith("on")]
        if tag == "style" or (tag == "script" and "src" not in names):
            self.inline.append(f"<{tag}> without src")

    def handle_data(self, data: str) -> None:
        if self.lasttag == "script" and data.strip():
            self.inline.append("script text")


def test_page_has_no_inline_script_or_style() -> None:
    finder = _InlineFinder()
    finder.feed((STATIC_DIR / "index.html").read_text(encoding="utf-8"))
    assert finder.inline == []


@pytest.mark.parametrize("module", sorted(path.name for path in STATIC_DIR.glob("*.js")))
def test_modules_build_markup_with_dom_apis_only(module: str) -> None:
    text = (STATIC_DIR / module).read_text(encoding="utf-8")
    markup_sinks = (
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|createContextualFragment|eval\(|new Function"
    )
    found = re.findall(markup_sinks, text)
    assert found == []


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
