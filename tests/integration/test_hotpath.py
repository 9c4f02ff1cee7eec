"""The hot-write middleware (app.hotpath) answers exactly as the FastAPI routes do, and hands them
everything it does not take: the same bodies, statuses, headers and problem documents either way."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Annotated, Any
from uuid import UUID

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL
from starlette.responses import Response

from app.api import hotpath
from app.api.deps import CurrentUser
from app.api.expenses import IdempotencyKeyHeader, post_expense
from app.api.settlements import post_settlement
from app.domain.schemas import ExpenseIn, SettlementIn
from tests.api import Api, Who, assert_problem
from tests.dbutil import counts

# The same X-Request-ID on both paths: problem bodies carry it, and the two must be byte for byte equal.
FAST = {"Content-Type": "application/json", "X-Request-ID": "hotpath-test"}
FRAMEWORK = {"Content-Type": "application/json; charset=utf-8", "X-Request-ID": "hotpath-test"}  # not taken by the fast path


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch, client: TestClient) -> Iterator[Counter[str]]:
    """Counts the requests the fast path served itself, per route."""
    calls: Counter[str] = Counter()
    routes: dict[str, hotpath.HotRoute] = client.app.state.hot_routes  # type: ignore[attr-defined]
    for name, route in list(routes.items()):

        async def counted(*args: Any, _name: str = name, _endpoint: Any = route.endpoint, **kwargs: Any) -> Any:
            calls[_name] += 1
            return await _endpoint(*args, **kwargs)

        monkeypatch.setitem(routes, name, replace(route, endpoint=counted))
    yield calls


def _app_with(extra: Any) -> FastAPI:
    """An app whose expense route takes one more parameter than the hot path supplies."""
    app, router = FastAPI(), APIRouter()

    async def post_expense(
        group_id: UUID, body: ExpenseIn, request: Request, user: CurrentUser, more: extra,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response:
        raise AssertionError("never called")

    async def post_settlement(
        group_id: UUID, body: SettlementIn, request: Request, user: CurrentUser,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response:
        raise AssertionError("never called")

    post_expense.__annotations__["more"] = extra  # this module's annotations are strings; give the real one
    router.post("/groups/{group_id}/expenses")(post_expense)
    router.post("/groups/{group_id}/settlements")(post_settlement)
    app.include_router(router, prefix="/v1")
    return app


async def _one() -> int:
    return 1


@pytest.mark.parametrize(
    "extra",
    [Annotated[int, Depends(_one)], Annotated[str | None, Query()], Annotated[str | None, Header(alias="X-Other")]],
    ids=["dependency", "query", "header"],
)
def test_a_hot_route_that_gains_a_parameter_fails_loudly_at_startup(extra: Any) -> None:
    with pytest.raises(RuntimeError, match=r"hot path cannot serve /v1/groups/\{group_id\}/expenses"):
        hotpath.hot_routes(_app_with(extra))


def test_the_hot_table_is_built_from_the_apps_own_routes(client: TestClient) -> None:
    routes = client.app.state.hot_routes  # type: ignore[attr-defined]
    assert routes["expenses"].endpoint is post_expense and routes["settlements"].endpoint is post_settlement


def _post(api: Api, path: str, who: Who, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return api.client.post(path, content=httpx.Request("POST", "/", json=body).content, headers=who.headers | headers)


def _without_ids(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("id", "created_at", "updated_at")}


def _warm(api: Api, who: Who, gid: str) -> None:
    assert api.client.get(f"/v1/groups/{gid}", headers=who.headers).status_code == 200  # token now cached


def test_both_paths_create_the_same_expense_and_settlement(api: Api, taken: Counter[str]) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    _warm(api, a, gid)
    expense = {"description": "Taxi", "amount": "10.00", "paid_by": a.id, "split_type": "equal",
               "participants": [{"user_id": a.id}, {"user_id": b.id}]}  # fmt: skip
    fast = _post(api, f"/v1/groups/{gid}/expenses", a, expense, FAST)
    slow = _post(api, f"/v1/groups/{gid}/expenses", a, expense, FRAMEWORK)
    assert taken == {"expenses": 1}
    assert fast.status_code == slow.status_code == 201
    assert _without_ids(fast.json()) == _without_ids(slow.json())
    assert fast.headers["content-type"] == slow.headers["content-type"]
    settlement = {"from_user_id": b.id, "to_user_id": a.id, "amount": "1.00"}
    fast = _post(api, f"/v1/groups/{gid}/settlements", a, settlement, FAST)
    slow = _post(api, f"/v1/groups/{gid}/settlements", a, settlement, FRAMEWORK)
    assert taken == {"expenses": 1, "settlements": 1}
    assert fast.status_code == slow.status_code == 201
    assert _without_ids(fast.json()) == _without_ids(slow.json())
    assert api.nets(a, gid) == {a.id: "8.00", b.id: "-8.00"}


def test_an_idempotent_replay_crosses_paths(api: Api, taken: Counter[str]) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    _warm(api, a, gid)
    body = {"description": "Taxi", "amount": "3.00", "paid_by": a.id, "split_type": "equal",
            "participants": [{"user_id": b.id}]}  # fmt: skip
    first = _post(api, f"/v1/groups/{gid}/expenses", a, body, FAST | {"Idempotency-Key": "k-1"})
    again = _post(api, f"/v1/groups/{gid}/expenses", a, body, FRAMEWORK | {"Idempotency-Key": "k-1"})
    third = _post(api, f"/v1/groups/{gid}/expenses", a, body, FAST | {"Idempotency-Key": "k-1"})
    assert taken == {"expenses": 2}
    assert first.status_code == again.status_code == third.status_code == 201
    assert first.content == again.content == third.content
    assert again.headers["Idempotent-Replayed"] == third.headers["Idempotent-Replayed"] == "true"
    reused = _post(api, f"/v1/groups/{gid}/expenses", a, body | {"amount": "4.00"}, FAST | {"Idempotency-Key": "k-1"})
    assert_problem(reused, 422, "idempotency-key-reused")
    assert_problem(_post(api, f"/v1/groups/{gid}/expenses", a, body, FAST | {"Idempotency-Key": ""}), 400)


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "1.001"},  # rejected after parsing (money rules): raised inside the endpoint
        {"amount": 1},  # rejected by the model: handed to FastAPI
        {"participants": []},
        {"split_type": "thirds"},
        {"extra": "field"},
    ],
)
def test_invalid_bodies_get_the_frameworks_problem_documents_and_write_nothing(
    api: Api, db_url: URL, change: dict[str, Any]
) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    _warm(api, a, gid)
    body = {"description": "x", "amount": "1.00", "paid_by": a.id, "split_type": "equal",
            "participants": [{"user_id": b.id}]} | change  # fmt: skip
    before = counts(db_url)
    fast = _post(api, f"/v1/groups/{gid}/expenses", a, body, FAST | {"Idempotency-Key": "bad-1"})
    slow = _post(api, f"/v1/groups/{gid}/expenses", a, body, FRAMEWORK | {"Idempotency-Key": "bad-2"})
    assert_problem(fast, 422)
    assert fast.json() == slow.json()
    assert counts(db_url) == before  # no expense, no ledger entry, no idempotency key


def test_requests_it_does_not_take_reach_the_routes_unchanged(api: Api, taken: Counter[str]) -> None:
    a, b, outsider = api.user(), api.user(), api.user()
    gid = api.group(a, members=(b,))
    path = f"/v1/groups/{gid}/expenses"
    body = {"description": "x", "amount": "1.00", "paid_by": a.id, "split_type": "equal",
            "participants": [{"user_id": b.id}]}  # fmt: skip
    assert_problem(_post(api, path, Who(a.id, "not-a-token", a.email), body, FAST), 401)
    assert_problem(api.client.post(path, content=b"{", headers=a.headers | FAST), 422)
    assert_problem(api.client.post(path, content=b"\xff\xfe", headers=a.headers | FAST), 422)
    upper = _post(api, f"/v1/groups/{gid.upper()}/expenses", a, body, FAST)  # a UUID, but not canonical
    assert upper.status_code == 201, upper.text
    assert taken == {}  # a's token was cached by now (api.group), yet none of these was taken
    _warm(api, outsider, api.group(outsider))
    assert_problem(_post(api, path, outsider, body, FAST), 404)  # not a member: raised inside, rendered alike
    assert taken == {"expenses": 1}
