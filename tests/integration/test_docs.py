"""/docs and /redoc work offline: the HTML names no other host, and every asset it references (and the
OpenAPI document) is served by the app itself, from the files a PyPI package ships."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from app.api.ops import STATIC_DOCS, docs_assets

ABSOLUTE = re.compile(r"(https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", re.I)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.refs.append(value)


def _references(html: str) -> list[str]:
    parser = _Refs()
    parser.feed(html)
    scripted = re.findall(r"""\burl:\s*['"]([^'"]+)['"]""", html)  # Swagger UI's `url: '/openapi.json'`
    return parser.refs + scripted


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_page_and_everything_it_references_come_from_the_app(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not ABSOLUTE.search(r.text), ABSOLUTE.findall(r.text)  # no CDN, no fonts host, no validator
    refs = _references(r.text)
    assert "/openapi.json" in refs and any(ref.endswith(".js") for ref in refs), refs
    for ref in refs:
        assert ref.startswith("/"), ref
        asset = client.get(ref)
        assert asset.status_code == 200 and len(asset.content) > 0, ref
        assert asset.headers["content-type"].split(";")[0] in (
            "text/javascript", "application/javascript", "text/css", "image/png", "application/json",
        ), (ref, asset.headers["content-type"])  # fmt: skip


def test_the_assets_are_the_packaged_files(client: TestClient) -> None:
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"):
        served = client.get(f"{STATIC_DOCS}/{name}")
        assert served.content == (docs_assets() / name).read_bytes(), name
    assert client.get(f"{STATIC_DOCS}/../../README.md").status_code == 404  # nothing outside the package's folder


def test_the_docs_pages_are_not_api_operations(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(p.startswith(("/docs", "/redoc", "/static")) for p in paths)
    assert {"/health/ready", "/metrics"} <= set(paths)  # operations since #13 (test_openapi.py)
