"""PUT /v1/users/me/password: set a first password, change it, and everything it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import URL

from tests.api import Api, Who, assert_problem
from tests.dbutil import ACCOUNT_TABLES, counts, run_sql

OLD, NEW = "an old passphrase", "a brand new passphrase"


def put(api: Api, who: Who, body: dict[str, Any]) -> Any:
    return api.client.put("/v1/users/me/password", json=body, headers=who.headers)


def login_status(api: Api, who: Who, password: str) -> int:
    return api.client.post("/v1/sessions", json={"email": who.email, "password": password}).status_code


def stored_hash(db_url: URL, who: Who) -> str | None:
    value: str | None = run_sql(db_url, "SELECT password_hash FROM users WHERE id = $1::uuid", who.id)[0][
        "password_hash"
    ]
    return value


def test_set_a_first_password_with_the_token_alone_then_change_it(api: Api, db_url: URL) -> None:
    a = api.user()
    assert stored_hash(db_url, a) is None
    r = put(api, a, {"new_password": OLD})
    assert r.status_code == 204 and r.content == b""
    assert login_status(api, a, OLD) == 201
    assert put(api, a, {"current_password": OLD, "new_password": NEW}).status_code == 204
    assert login_status(api, a, NEW) == 201
    assert login_status(api, a, OLD) == 401
    assert api.client.get("/v1/users/me", headers=a.headers).status_code == 200  # tokens stay valid


def test_current_password_is_required_once_there_is_one(api: Api, db_url: URL) -> None:
    a = api.user()
    assert put(api, a, {"new_password": OLD}).status_code == 204
    before = (stored_hash(db_url, a), counts(db_url, ACCOUNT_TABLES))
    body = assert_problem(put(api, a, {"new_password": NEW}), 422, "validation-error")
    assert body["errors"][0]["loc"] == ["body", "current_password"]
    assert (stored_hash(db_url, a), counts(db_url, ACCOUNT_TABLES)) == before


def test_wrong_current_password_is_403_and_counts_as_a_failed_login(api: Api, db_url: URL) -> None:
    limit = api.client.app.state.settings.login_max_failures_per_account  # type: ignore[attr-defined]
    a = api.user()
    assert put(api, a, {"new_password": OLD}).status_code == 204
    before = stored_hash(db_url, a)
    for _ in range(limit):
        r = put(api, a, {"current_password": "not it at all", "new_password": NEW})
        assert_problem(r, 403, "invalid-current-password")
    assert_problem(put(api, a, {"current_password": OLD, "new_password": NEW}), 429, "too-many-attempts")
    assert_problem(api.client.post("/v1/sessions", json={"email": a.email, "password": OLD}), 429)
    assert stored_hash(db_url, a) == before


@pytest.mark.parametrize("new", ["short", "p" * 129, "zzzzzzzzzz", "abcdefghij", "password1", "{email}"])
def test_weak_new_password_is_422_and_writes_nothing(api: Api, db_url: URL, new: str) -> None:
    a = api.user()
    assert put(api, a, {"new_password": OLD}).status_code == 204
    before = (stored_hash(db_url, a), counts(db_url, ACCOUNT_TABLES))
    r = put(api, a, {"current_password": OLD, "new_password": new.format(email=a.email)})
    body = assert_problem(r, 422, "validation-error")
    assert body["errors"][0]["loc"] == ["body", "new_password"]
    assert (stored_hash(db_url, a), counts(db_url, ACCOUNT_TABLES)) == before
