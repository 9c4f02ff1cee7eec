"""Passwords at registration, password logins (POST /v1/sessions) and their failure limits."""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from app.infra.config import Settings
from app.main import create_app
from tests.api import Api, assert_problem
from tests.dbutil import ACCOUNT_TABLES, counts, run_sql

PASSWORD = "correct horse battery staple"


def _email() -> str:
    return f"p-{uuid.uuid4().hex[:10]}@example.com"


def register(api: Api, password: str | None = PASSWORD, email: str | None = None) -> dict[str, Any]:
    body = {"name": "P", "email": email or _email()} | ({"password": password} if password else {})
    r = api.client.post("/v1/users", json=body)
    assert r.status_code == 201, r.text
    return {**r.json(), "email": body["email"]}


def login(api: Api, email: str, password: str) -> Any:
    return api.client.post("/v1/sessions", json={"email": email, "password": password})


def test_register_with_password_then_log_in(api: Api, db_url: URL) -> None:
    user = register(api)
    assert set(user) == {"id", "name", "email", "created_at", "api_token"}
    stored = run_sql(db_url, "SELECT password_hash FROM users WHERE id = $1::uuid", user["id"])[0]["password_hash"]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    r = login(api, user["email"].upper(), PASSWORD)  # emails compare case-insensitively
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"api_token", "token_id"}
    assert r.headers["location"] == f"/v1/users/me/tokens/{body['token_id']}"
    me = api.client.get("/v1/users/me", headers={"Authorization": f"Bearer {body['api_token']}"})
    assert me.status_code == 200 and me.json()["id"] == user["id"]
    tokens = api.client.get("/v1/users/me/tokens", headers={"Authorization": f"Bearer {body['api_token']}"}).json()
    assert sorted(t["name"] for t in tokens) == ["registration", "session"]
    assert body["token_id"] in {t["id"] for t in tokens}


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short12", "at least 8"),
        ("x" * 129, "at most 128"),
        ("aaaaaaaaaaaa", "repeated"),
        ("12345678", "run"),
        ("hgfedcba", "run"),
        ("PASSWORD", "common"),
        ("iloveyou", "common"),
        ("{email}", "email"),
        ("{local}", "email"),
        ("abc\x00defgh", "NUL"),
        (12345678, "string"),
    ],
)
def test_weak_or_bad_password_is_422_and_writes_nothing(api: Api, db_url: URL, password: Any, why: str) -> None:
    email = _email()
    if isinstance(password, str):
        password = password.format(email=email.upper(), local=email.partition("@")[0])
    r = api.client.post("/v1/users", json={"name": "W", "email": email, "password": password})
    body = assert_problem(r, 422, "validation-error")
    assert body["errors"][0]["loc"] == ["body", "password"], body
    assert counts(db_url)["users"] == 0
    assert counts(db_url, ACCOUNT_TABLES) == {"api_tokens": 0, "login_failures": 0}


def test_wrong_password_and_unknown_email_get_the_same_401(api: Api) -> None:
    user = register(api)
    without_password = register(api, password=None)
    answers = [
        login(api, user["email"], PASSWORD + "!"),
        login(api, _email(), PASSWORD),
        login(api, without_password["email"], PASSWORD),
    ]
    bodies = [{k: v for k, v in assert_problem(r, 401, "invalid-credentials").items() if k != "request_id"}
              for r in answers]  # fmt: skip  (request_id differs per request by design)
    assert bodies[0] == bodies[1] == bodies[2]
    assert {r.headers.get("www-authenticate") for r in answers} == {"Bearer"}


def test_unknown_email_is_verified_against_a_dummy_hash(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same Argon2id work for an unknown email as for a wrong password (so the time tells nothing)."""
    passwords = api.client.app.state.passwords  # type: ignore[attr-defined]
    checked: list[str] = []
    original = passwords._matches
    monkeypatch.setattr(passwords, "_matches", lambda encoded, pw: checked.append(encoded) or original(encoded, pw))
    user = register(api)
    assert_problem(login(api, user["email"], "wrong password!"), 401)
    assert_problem(login(api, _email(), "wrong password!"), 401)
    assert len(checked) == 2 and all(h.startswith("$argon2id$") for h in checked)
    assert checked[0] != checked[1]  # the user's hash, then the dummy made with the same parameters
    assert checked[0].split("$")[3] == checked[1].split("$")[3]  # m=..., t=..., p=...


def test_wrong_email_and_wrong_password_take_similar_time(api: Api) -> None:
    user = register(api)

    def median_s(email: str) -> float:
        times = []
        for _ in range(9):
            start = time.perf_counter()
            assert login(api, email, "not the password").status_code == 401
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    known, unknown = median_s(user["email"]), median_s(_email())
    assert 0.5 < unknown / known < 2.0, (known, unknown)


def test_failed_logins_are_limited_per_account(api: Api, db_url: URL) -> None:
    limit = api.client.app.state.settings.login_max_failures_per_account  # type: ignore[attr-defined]
    user = register(api)
    for _ in range(limit):
        assert_problem(login(api, user["email"], "wrong password!"), 401)
    blocked = login(api, user["email"], PASSWORD)  # even the right password, until the window ends
    assert_problem(blocked, 429, "too-many-attempts")
    assert 1 <= int(blocked.headers["retry-after"]) <= 900
    # The window is over (moved back by hand): the right password works and resets the account.
    run_sql(db_url, "UPDATE login_failures SET window_start = window_start - interval '1 hour'")
    assert login(api, user["email"], PASSWORD).status_code == 201
    assert_problem(login(api, user["email"], "wrong password!"), 401)


def test_a_right_password_resets_the_account_count(api: Api) -> None:
    limit = api.client.app.state.settings.login_max_failures_per_account  # type: ignore[attr-defined]
    user = register(api)
    for _ in range(limit - 1):
        assert_problem(login(api, user["email"], "wrong password!"), 401)
    assert login(api, user["email"], PASSWORD).status_code == 201
    for _ in range(limit - 1):
        assert_problem(login(api, user["email"], "wrong password!"), 401)
    assert login(api, user["email"], PASSWORD).status_code == 201


def test_failed_logins_are_limited_per_client_address(settings: Settings, clean_db: URL) -> None:
    """Different accounts from one address: the address's own limit (3 here) stops the guessing."""
    with TestClient(create_app(settings.model_copy(update={"login_max_failures_per_address": 3}))) as client:
        api = Api(client)
        user = register(api)
        for _ in range(3):
            assert_problem(login(api, _email(), "whatever it is"), 401)
        blocked = login(api, user["email"], PASSWORD)
        assert_problem(blocked, 429, "too-many-attempts")
        assert int(blocked.headers["retry-after"]) >= 1


def test_unknown_emails_are_limited_too(api: Api) -> None:
    limit = api.client.app.state.settings.login_max_failures_per_account  # type: ignore[attr-defined]
    email = _email()
    for _ in range(limit):
        assert_problem(login(api, email, "whatever it is"), 401)
    assert_problem(login(api, email, "whatever it is"), 429, "too-many-attempts")


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"email": "a@b.io"},
        {"password": "x" * 10},
        {"email": "", "password": "p" * 8},
        {"email": "a@b.io", "password": "p" * 129},
        {"email": "a@b.io", "password": 12345678},
        {"email": "a@b.io", "password": "p" * 8, "extra": 1},
    ],
)
def test_malformed_login_is_422_and_counts_nothing(api: Api, db_url: URL, payload: dict[str, Any]) -> None:
    assert_problem(api.client.post("/v1/sessions", json=payload), 422, "validation-error")
    assert counts(db_url, ACCOUNT_TABLES) == {"api_tokens": 0, "login_failures": 0}
