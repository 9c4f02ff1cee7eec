"""Named API tokens: list, create, revoke; last_used_at without a write per request; the per-user limit."""

from __future__ import annotations

import time
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from app.infra.config import Settings
from app.main import create_app
from tests.api import Api, Who, assert_problem
from tests.dbutil import ACCOUNT_TABLES, counts, run_sql


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tokens_of(api: Api, who: Who) -> list[dict[str, object]]:
    r = api.client.get("/v1/users/me/tokens", headers=who.headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, object]] = r.json()
    return items


def new_token(api: Api, who: Who, name: str = "ci") -> dict[str, str]:
    r = api.client.post("/v1/users/me/tokens", json={"name": name}, headers=who.headers)
    assert r.status_code == 201, r.text
    body: dict[str, str] = r.json()
    assert r.headers["location"] == f"/v1/users/me/tokens/{body['id']}"
    return body


def token_rows(db_url: URL) -> list[tuple[object, ...]]:
    """Every token as a rejected request must leave it (last_used_at aside: using a token is not writing)."""
    rows = run_sql(db_url, "SELECT id, user_id, name, token_hash, created_at, revoked_at FROM api_tokens ORDER BY id")
    return [tuple(r.values()) for r in rows]


def test_registration_token_is_listed_without_the_token(api: Api) -> None:
    a = api.user()
    (only,) = tokens_of(api, a)
    assert set(only) == {"id", "name", "created_at", "last_used_at"}
    assert only["name"] == "registration" and str(only["created_at"]).endswith("Z")
    assert only["last_used_at"] is not None  # the listing request itself used it


def test_create_use_list_and_revoke_a_token(api: Api) -> None:
    a = api.user()
    created = new_token(api, a, "deploy bot")
    assert set(created) == {"id", "name", "api_token", "created_at"} and created["name"] == "deploy bot"
    listed = tokens_of(api, a)
    assert [t["name"] for t in listed] == ["deploy bot", "registration"]  # newest first
    assert listed[0]["last_used_at"] is None and "api_token" not in listed[0]
    me = api.client.get("/v1/users/me", headers=bearer(created["api_token"]))
    assert me.status_code == 200 and me.json()["id"] == a.id
    r = api.client.delete(f"/v1/users/me/tokens/{created['id']}", headers=a.headers)
    assert r.status_code == 204 and r.content == b""
    assert_problem(api.client.get("/v1/users/me", headers=bearer(created["api_token"])), 401, "unauthorized")
    assert [t["name"] for t in tokens_of(api, a)] == ["registration"]
    again = api.client.delete(f"/v1/users/me/tokens/{created['id']}", headers=a.headers)
    assert_problem(again, 404, "not-found")


def test_another_users_or_unknown_token_id_is_404_and_writes_nothing(api: Api, db_url: URL) -> None:
    a, b = api.user(), api.user()
    theirs = new_token(api, b)
    before = token_rows(db_url)
    for token_id in (theirs["id"], str(uuid.uuid4())):
        assert_problem(api.client.delete(f"/v1/users/me/tokens/{token_id}", headers=a.headers), 404, "not-found")
    assert_problem(api.client.delete("/v1/users/me/tokens/not-a-uuid", headers=a.headers), 422)
    assert token_rows(db_url) == before
    assert api.client.get("/v1/users/me", headers=bearer(theirs["api_token"])).status_code == 200


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "   "}, {"name": "n" * 101}, {"name": 5}, {"x": "y"}])
def test_invalid_token_name_is_422_and_writes_nothing(api: Api, db_url: URL, body: dict[str, object]) -> None:
    a = api.user()
    before = counts(db_url, ACCOUNT_TABLES)
    assert_problem(api.client.post("/v1/users/me/tokens", json=body, headers=a.headers), 422, "validation-error")
    assert counts(db_url, ACCOUNT_TABLES) == before


def test_token_operations_need_a_token(api: Api) -> None:
    some = str(uuid.uuid4())
    for method, path in [
        ("GET", "/v1/users/me/tokens"),
        ("POST", "/v1/users/me/tokens"),
        ("DELETE", f"/v1/users/me/tokens/{some}"),
        ("PUT", "/v1/users/me/password"),
    ]:
        r = api.client.request(method, path, json={"name": "x"} if method == "POST" else None)
        assert_problem(r, 401, "unauthorized")


def test_last_used_at_is_written_at_most_once_per_interval(settings: Settings, clean_db: URL) -> None:
    # The short-ttl regime (no revocation listener): every 0.5 s the token row is read again.
    with TestClient(create_app(settings.model_copy(update={"token_cache_listen_ttl_s": 0}))) as client:
        _last_used_at_written_once_per_interval(Api(client), clean_db)


def _last_used_at_written_once_per_interval(api: Api, db_url: URL) -> None:
    a = api.user()
    created = new_token(api, a)
    sql = "SELECT last_used_at FROM api_tokens WHERE id = $1::uuid"
    assert run_sql(db_url, sql, created["id"])[0]["last_used_at"] is None
    assert api.client.get("/v1/users/me", headers=bearer(created["api_token"])).status_code == 200
    first = run_sql(db_url, sql, created["id"])[0]["last_used_at"]
    assert first is not None
    time.sleep(0.6)  # past the token cache's ttl: the next request reads the token row again
    assert api.client.get("/v1/users/me", headers=bearer(created["api_token"])).status_code == 200
    assert run_sql(db_url, sql, created["id"])[0]["last_used_at"] == first  # not stale yet: not written
    run_sql(
        db_url,
        "UPDATE api_tokens SET last_used_at = last_used_at - interval '2 minutes' WHERE id = $1::uuid",
        created["id"],
    )
    time.sleep(0.6)
    assert api.client.get("/v1/users/me", headers=bearer(created["api_token"])).status_code == 200
    assert run_sql(db_url, sql, created["id"])[0]["last_used_at"] > first  # stale: written again


def test_live_tokens_per_user_are_limited(settings: Settings, clean_db: URL) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_tokens_per_user": 3}))) as client:
        api = Api(client)
        a = api.user()  # its registration token is the first of 3
        new_token(api, a)
        new_token(api, a)
        before = counts(clean_db, ACCOUNT_TABLES)
        r = client.post("/v1/users/me/tokens", json={"name": "one too many"}, headers=a.headers)
        assert_problem(r, 409, "too-many-tokens")
        assert counts(clean_db, ACCOUNT_TABLES) == before


def test_a_login_at_the_limit_replaces_the_least_recently_used_session(settings: Settings, clean_db: URL) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_tokens_per_user": 3}))) as client:
        email, password = f"s-{uuid.uuid4().hex[:8]}@example.com", "a fine passphrase"
        registered = client.post("/v1/users", json={"name": "S", "email": email, "password": password}).json()
        sessions = [client.post("/v1/sessions", json={"email": email, "password": password}) for _ in range(3)]
        assert [r.status_code for r in sessions] == [201, 201, 201]
        first, second, third = (r.json() for r in sessions)
        assert client.get("/v1/users/me", headers=bearer(first["api_token"])).status_code == 401  # replaced
        for live in (second, third):
            assert client.get("/v1/users/me", headers=bearer(live["api_token"])).status_code == 200
        names = [t["name"] for t in client.get("/v1/users/me/tokens", headers=bearer(registered["api_token"])).json()]
        assert sorted(names) == ["registration", "session", "session"]
