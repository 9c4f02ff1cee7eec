"""Smaller HTTP edges: chunked bodies over the limit are 413s; 405's Allow lists every method of the path;
two Idempotency-Key headers are a 400; any spelling of a path UUID is the same idempotent request;
duplicate JSON keys are a 422 on both write paths; HEAD works on every GET route; CORS is off unless
origins are configured."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from app.infra.config import Settings
from app.main import create_app
from tests.api import Api, Who, assert_problem
from tests.dbutil import counts

FAST = {"Content-Type": "application/json"}
FRAMEWORK = {"Content-Type": "application/json; charset=utf-8"}
PATHS = pytest.mark.parametrize("path", [FAST, FRAMEWORK], ids=["hot path", "fastapi"])


def _body(who: Who) -> dict[str, Any]:
    return {"description": "x", "amount": "4.00", "paid_by": who.id, "split_type": "equal",
            "participants": [{"user_id": who.id}]}  # fmt: skip


def _ready(api: Api) -> tuple[Who, str]:
    a = api.user()
    gid = api.group(a)
    assert api.client.get(f"/v1/groups/{gid}", headers=a.headers).status_code == 200  # token cached
    return a, gid


def _chunked(body: bytes, pad: int) -> Iterator[bytes]:
    yield body[:-1]
    for _ in range(pad // 1000):
        yield b" " * 1000
    yield body[-1:]


@PATHS
def test_a_chunked_body_over_the_limit_is_413_not_422(api: Api, db_url: URL, path: dict[str, str]) -> None:
    a, gid = _ready(api)
    raw = api.client.build_request("POST", "/", json=_body(a)).content
    before = counts(db_url)
    r = api.client.post(f"/v1/groups/{gid}/expenses", content=_chunked(raw, 300_000), headers=a.headers | path)
    assert "content-length" not in r.request.headers  # sent chunked
    assert_problem(r, 413, "body-too-large")
    r = api.client.post("/v1/groups", content=_chunked(b'{"name": "G", "currency": "USD"}', 300_000), headers=a.headers)
    assert_problem(r, 413, "body-too-large")
    assert counts(db_url) == before
    ok = api.client.post(f"/v1/groups/{gid}/expenses", content=_chunked(raw, 5_000), headers=a.headers | path)
    assert ok.status_code == 201, ok.text  # a chunked body within the limit is fine


def test_405_lists_every_method_of_the_path(api: Api) -> None:
    a, gid = _ready(api)
    expense = api.expense(a, gid, "1.00", a, [a]).json()["id"]
    r = api.client.patch(f"/v1/groups/{gid}/expenses/{expense}", headers=a.headers)
    assert_problem(r, 405, "method-not-allowed")
    assert r.headers["Allow"] == "GET, HEAD, PUT, DELETE"
    assert api.client.put(f"/v1/groups/{gid}/expenses", headers=a.headers).headers["Allow"] == "GET, HEAD, POST"
    assert api.client.post("/health").headers["Allow"] == "GET, HEAD"


@PATHS
def test_two_idempotency_key_headers_are_a_400(api: Api, db_url: URL, path: dict[str, str]) -> None:
    a, gid = _ready(api)
    content = api.client.build_request("POST", "/", json=_body(a)).content
    before = counts(db_url)
    headers = [*a.headers.items(), *path.items(), ("Idempotency-Key", "k-1"), ("Idempotency-Key", "k-2")]
    r = api.client.post(f"/v1/groups/{gid}/expenses", content=content, headers=headers)
    assert_problem(r, 400, "invalid-idempotency-key")
    same = [*a.headers.items(), *path.items(), ("Idempotency-Key", "k-1"), ("Idempotency-Key", "k-1")]
    assert_problem(api.client.post(f"/v1/groups/{gid}/expenses", content=content, headers=same), 400)
    assert counts(db_url) == before


def _spellings(uid: str) -> list[str]:
    u = UUID(uid)
    return [str(u).upper(), u.hex, u.hex.upper(), "{" + str(u) + "}", f"urn:uuid:{u}"]


@PATHS
def test_any_spelling_of_a_path_uuid_is_the_same_idempotent_request(api: Api, path: dict[str, str]) -> None:
    a, gid = _ready(api)
    content = api.client.build_request("POST", "/", json=_body(a)).content
    first = api.client.post(f"/v1/groups/{gid}/expenses", content=content, headers=a.headers | path | {"Idempotency-Key": "u-1"})
    assert first.status_code == 201
    for spelling in _spellings(gid):
        r = api.client.post(f"/v1/groups/{spelling}/expenses", content=content,
                            headers=a.headers | path | {"Idempotency-Key": "u-1"})  # fmt: skip
        assert r.status_code == 201 and r.headers.get("Idempotent-Replayed") == "true", (spelling, r.text)
        assert r.content == first.content
    expense = first.json()["id"]
    edited = api.client.put(f"/v1/groups/{gid}/expenses/{expense}", content=content,
                            headers=a.headers | FAST | {"Idempotency-Key": "u-2"})  # fmt: skip
    assert edited.status_code == 200
    again = api.client.put(f"/v1/groups/{gid.upper()}/expenses/{UUID(expense).hex}", content=content,
                           headers=a.headers | FAST | {"Idempotency-Key": "u-2"})  # fmt: skip
    assert again.headers.get("Idempotent-Replayed") == "true" and again.content == edited.content


DUPLICATES = [
    b'{"description": "x", "amount": "4.00", "amount": "400.00", "paid_by": "%s", "split_type": "equal", '
    b'"participants": [{"user_id": "%s"}]}',
    b'{"description": "x", "amount": "4.00", "paid_by": "%s", "split_type": "equal", '
    b'"participants": [{"user_id": "%s", "user_id": "00000000-0000-0000-0000-000000000000"}]}',
]


@PATHS
@pytest.mark.parametrize("raw", DUPLICATES, ids=["top level", "nested"])
def test_duplicate_json_keys_are_a_422_and_write_nothing(
    api: Api, db_url: URL, path: dict[str, str], raw: bytes
) -> None:
    a, gid = _ready(api)
    content = raw % (a.id.encode(), a.id.encode())
    before = counts(db_url)
    headers = a.headers | path | {"Idempotency-Key": "d-1", "X-Request-ID": "dup"}
    r = api.client.post(f"/v1/groups/{gid}/expenses", content=content, headers=headers)
    body = assert_problem(r, 422, "validation-error")
    assert "twice" in body["detail"] and body["errors"][0]["loc"] == ["body"]
    assert counts(db_url) == before
    other = FRAMEWORK if path == FAST else FAST
    assert api.client.post(f"/v1/groups/{gid}/expenses", content=content, headers=headers | other).content == r.content
    g = api.client.post("/v1/groups", content=b'{"name": "G", "name": "H", "currency": "USD"}', headers=a.headers)
    assert_problem(g, 422, "validation-error")


def _get_paths(client: TestClient) -> list[str]:
    spec_paths = client.get("/openapi.json").json()["paths"]
    return [p for p, item in spec_paths.items() if "get" in item]


def test_head_works_on_every_get_route(api: Api) -> None:
    a, gid = _ready(api)
    b = api.user()
    api.client.post(f"/v1/groups/{gid}/members", json={"user_id": b.id}, headers=a.headers)
    expense = api.expense(a, gid, "2.00", a, [a, b]).json()["id"]
    settlement = api.settle(a, gid, b, a, "1.00").json()["id"]
    rule = api.client.post(
        f"/v1/groups/{gid}/recurring",
        json={"description": "rent", "amount": "1.00", "paid_by": a.id, "split_type": "equal",
              "participants": [{"user_id": a.id}], "schedule": {"every": "month", "start_date": "2999-01-01"}},
        headers=a.headers,
    )  # fmt: skip
    assert rule.status_code == 201, rule.text
    ids = {"group_id": gid, "expense_id": expense, "user_id": a.id, "settlement_id": settlement,
           "rule_id": rule.json()["id"]}  # fmt: skip
    paths = [p.format(**ids) for p in _get_paths(api.client)]
    paths += ["/openapi.json", "/docs", "/redoc", "/health/ready", "/static/docs/favicon.png"]
    for path in paths:
        headers = a.headers | {"X-Request-ID": "same"}
        got, head = api.client.get(path, headers=headers), api.client.head(path, headers=headers)
        assert got.status_code == head.status_code == 200, (path, got.status_code, head.status_code)
        assert head.content == b"", path
        drop = {"date", "etag", "last-modified"} | ({"content-length"} if path == "/metrics" else set())  # counts move
        assert {k: v for k, v in head.headers.items() if k not in drop} == {
            k: v for k, v in got.headers.items() if k not in drop
        }, path
    metrics = api.client.head("/metrics")
    assert metrics.status_code == 200 and metrics.content == b"" and metrics.headers["content-type"].startswith("text/plain")


def test_cors_is_off_by_default(client: TestClient) -> None:
    origin = {"Origin": "https://app.example.com"}
    assert "access-control-allow-origin" not in client.get("/health", headers=origin).headers
    preflight = client.options("/v1/groups", headers=origin | {"Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_for_the_configured_origins(settings: Settings) -> None:
    configured = settings.model_copy(update={"cors_origins": ("https://app.example.com", "http://localhost:3000")})
    with TestClient(create_app(configured)) as c:
        pre = c.options("/v1/groups", headers={
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key, x-request-id",
        })  # fmt: skip
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "POST" in pre.headers["access-control-allow-methods"]
        assert "idempotency-key" in pre.headers["access-control-allow-headers"].lower()
        assert pre.headers["X-Request-ID"]
        r = c.get("/health", headers={"Origin": "http://localhost:3000"})
        assert r.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
        assert "retry-after" in r.headers["access-control-expose-headers"].lower()
        other = c.options("/v1/groups", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
        assert "access-control-allow-origin" not in c.get("/health", headers={"Origin": "https://evil.example"}).headers
