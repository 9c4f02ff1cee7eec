"""X-Request-ID: accepted when 1..128 printable ASCII characters (else replaced), generated otherwise,
echoed on every response (whoever rendered it), in every problem body and on every log line."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.infra.logs import CURRENT, JsonFormatter, RequestContext, TextFormatter, configure_logging
from tests.api import Api

GENERATED = re.compile(r"[0-9a-f]{20}")


@pytest.mark.parametrize("sent", ["abc", "x" * 128, "a b/c:d=e+f~!", "0" * 1])
def test_an_acceptable_request_id_is_echoed(client: TestClient, sent: str) -> None:
    assert client.get("/health", headers={"X-Request-ID": sent}).headers["X-Request-ID"] == sent


@pytest.mark.parametrize("sent", [b"", b"x" * 129, "é".encode(), b"a\x7fb", b"tab\there"], ids=repr)
def test_anything_else_is_replaced_by_a_generated_id(client: TestClient, sent: bytes) -> None:
    r = client.get("/health", headers={"X-Request-ID": sent})  # type: ignore[dict-item]
    assert GENERATED.fullmatch(r.headers["X-Request-ID"]), r.headers["X-Request-ID"]


def test_generated_ids_are_unique(client: TestClient) -> None:
    ids = {client.get("/health").headers["X-Request-ID"] for _ in range(50)}
    assert len(ids) == 50 and all(GENERATED.fullmatch(i) for i in ids)


def _chunks(size: int) -> Iterator[bytes]:
    yield b'{"name": "'
    yield b"x" * size
    yield b'", "currency": "USD"}'


def test_every_kind_of_response_carries_it_and_every_problem_body_too(api: Api) -> None:
    a = api.user()
    gid = api.group(a)
    c = api.client
    body = {"description": "x", "amount": "1.00", "paid_by": a.id, "split_type": "equal",
            "participants": [{"user_id": a.id}]}  # fmt: skip
    c.get(f"/v1/groups/{gid}", headers=a.headers)  # token cached: the next POST takes the hot path
    responses: dict[str, Any] = {
        "200": c.get("/health", headers={"X-Request-ID": "r-200"}),
        "201 hot path": c.post(f"/v1/groups/{gid}/expenses", json=body, headers=a.headers | {"X-Request-ID": "r-201"}),
        "401": c.get("/v1/users/me", headers={"X-Request-ID": "r-401"}),
        "404": c.get("/nowhere", headers={"X-Request-ID": "r-404"}),
        "405": c.patch("/health", headers={"X-Request-ID": "r-405"}),
        "413": c.post("/v1/groups", content=b"{" + b" " * 300_000 + b"}", headers=a.headers | {"X-Request-ID": "r-413"}),
        "413 chunked": c.post("/v1/groups", content=_chunks(300_000), headers=a.headers | {"X-Request-ID": "r-413c"}),
        "422": c.post("/v1/users", json={}, headers={"X-Request-ID": "r-422"}),
        "422 hot path": c.post(f"/v1/groups/{gid}/expenses", json=body | {"amount": "1.001"},
                               headers=a.headers | {"X-Request-ID": "r-422h"}),
        "HEAD": c.head("/health", headers={"X-Request-ID": "r-head"}),
        "static": c.get("/static/docs/favicon.png", headers={"X-Request-ID": "r-static"}),
        "metrics": c.get("/metrics", headers={"X-Request-ID": "r-metrics"}),
    }
    for name, r in responses.items():
        sent = r.request.headers["X-Request-ID"]
        assert r.headers.get("X-Request-ID") == sent, name
        if r.status_code >= 400:
            assert r.headers["content-type"] == "application/problem+json", name
            assert r.json()["request_id"] == sent, name
    assert responses["413 chunked"].status_code == 413


@pytest.fixture
def json_logs() -> Iterator[None]:
    configure_logging(log_format="json", level="INFO")
    yield
    configure_logging(log_format="text", level="INFO")


def test_json_logs_carry_the_request(api: Api, json_logs: None, capsys: pytest.CaptureFixture[str]) -> None:
    a = api.user()
    gid = api.group(a)
    capsys.readouterr()
    body = {"description": "x", "amount": "1.00", "paid_by": a.id, "split_type": "equal",
            "participants": [{"user_id": a.id}]}  # fmt: skip
    headers = a.headers | {"X-Request-ID": "json-log", "X-Test-Fault": "40001:1"}
    assert api.client.post(f"/v1/groups/{gid}/expenses", json=body, headers=headers).status_code == 201
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.strip()]  # each line one object
    mine = [x for x in lines if x["request_id"] == "json-log"]
    assert mine and "transient conflict 40001" in mine[0]["message"]
    assert mine[0]["method"] == "POST" and mine[0]["route"] == "/v1/groups/{group_id}/expenses"
    assert mine[0]["level"] == "WARNING" and mine[0]["logger"] == "quits.tx"


def _record(level: int, msg: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("quits.http", level, __file__, 1, msg, (), exc_info)


def test_formats_inside_and_outside_a_request(client: TestClient) -> None:
    from app.infra.logs import RequestFilter

    scope = {"type": "http", "path": "/v1/groups/abc", "route": None}
    table = client.app.state.route_table  # type: ignore[attr-defined]
    ctx = RequestContext("rid-1", "GET", scope, table, status=503)
    token = CURRENT.set(ctx)
    try:
        inside = _record(logging.ERROR, "boom", RuntimeError("x"))
        RequestFilter().filter(inside)
    finally:
        CURRENT.reset(token)
    outside = _record(logging.INFO, "started")
    RequestFilter().filter(outside)
    doc = json.loads(JsonFormatter().format(inside))
    assert doc["request_id"] == "rid-1" and doc["method"] == "GET" and doc["status"] == 503
    assert doc["route"] == "/v1/groups/{group_id}" and "RuntimeError: x" in doc["exception"]
    assert json.loads(JsonFormatter().format(outside))["request_id"] == "-"
    text = TextFormatter().format(inside)
    assert text.startswith("ERROR:    ") and "quits.http [rid-1] boom" in text
    assert TextFormatter().format(outside).startswith("INFO:     ")
