import pytest
from sqlalchemy.engine import URL

from tests.api import Api, assert_problem
from tests.dbutil import counts, run_sql


def test_create_user_returns_token_once_and_stores_hash(api: Api, db_url: URL) -> None:
    r = api.client.post("/v1/users", json={"name": "Ann", "email": "Ann@Example.com"})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"id", "name", "email", "created_at", "api_token"}
    assert body["created_at"].endswith("Z")
    token = body["api_token"]
    stored = run_sql(db_url, "SELECT token_hash FROM api_tokens WHERE user_id = $1::uuid", body["id"])[0]["token_hash"]
    assert token.encode() not in bytes(stored) and len(bytes(stored)) == 32
    me = api.client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json() == {k: body[k] for k in ("id", "name", "email", "created_at")}
    assert "api_token" not in me.json()


def test_email_is_case_insensitively_unique(api: Api, db_url: URL) -> None:
    api.client.post("/v1/users", json={"name": "Ann", "email": "ann@example.com"})
    r = api.client.post("/v1/users", json={"name": "Ann2", "email": "ANN@EXAMPLE.COM"})
    assert_problem(r, 409, "email-taken")
    assert counts(db_url)["users"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer " + "x" * 500},
    ],
)
def test_bad_or_missing_token_is_401_with_challenge(api: Api, headers: dict[str, str]) -> None:
    r = api.client.get("/v1/users/me", headers=headers)
    assert_problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"


def test_every_v1_route_except_signup_requires_auth(api: Api) -> None:
    gid = "00000000-0000-0000-0000-000000000001"
    for method, path in [
        ("GET", "/v1/groups"),
        ("POST", "/v1/groups"),
        ("GET", f"/v1/groups/{gid}"),
        ("POST", f"/v1/groups/{gid}/members"),
        ("DELETE", f"/v1/groups/{gid}/members/{gid}"),
        ("POST", f"/v1/groups/{gid}/expenses"),
        ("GET", f"/v1/groups/{gid}/expenses"),
        ("GET", f"/v1/groups/{gid}/expenses/{gid}"),
        ("PUT", f"/v1/groups/{gid}/expenses/{gid}"),
        ("DELETE", f"/v1/groups/{gid}/expenses/{gid}"),
        ("POST", f"/v1/groups/{gid}/settlements"),
        ("GET", f"/v1/groups/{gid}/settlements"),
        ("GET", f"/v1/groups/{gid}/balances"),
        ("GET", f"/v1/groups/{gid}/ledger"),
    ]:
        r = api.client.request(method, path, json={} if method in ("POST", "PUT") else None)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "A"},
        {"email": "a@example.com"},
        {"name": "A", "email": "nope"},
        {"name": "  ", "email": "a@b.io"},
        {"name": "A" * 101, "email": "a@b.io"},
        {"name": 5, "email": "a@b.io"},
        {"name": "A", "email": "a" * 250 + "@b.io"},
    ],
)
def test_invalid_user_payload_is_422_and_writes_nothing(api: Api, db_url: URL, payload: dict[str, object]) -> None:
    assert_problem(api.client.post("/v1/users", json=payload), 422)
    assert counts(db_url)["users"] == 0
