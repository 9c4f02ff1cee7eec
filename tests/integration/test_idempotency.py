import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from app.domain.idempotency import purge_expired
from app.infra.config import Settings
from app.infra.db import make_engine
from tests.api import Api, Who, assert_problem
from tests.dbutil import counts, run_sql


def _expense(a: Who, b: Who, amount: str = "10.00") -> dict[str, Any]:
    return {
        "description": "Dinner",
        "amount": amount,
        "paid_by": a.id,
        "split_type": "equal",
        "participants": [{"user_id": a.id}, {"user_id": b.id}],
    }


def _post(api: Api, who: Who, path: str, body: Any, key: str | None) -> Any:
    headers = who.headers | ({"Idempotency-Key": key} if key is not None else {})
    return api.client.post(path, json=body, headers=headers)


def test_same_key_same_request_replays(api: Api, db_url: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    path = f"/v1/groups/{gid}/expenses"
    first = _post(api, a, path, _expense(a, b), "k1")
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    before = counts(db_url)
    # Same JSON with other key order and whitespace is the same request.
    body = dict(reversed(list(_expense(a, b).items())))
    again = api.client.post(
        path,
        content=_dumps_spaced(body),
        headers=a.headers | {"Idempotency-Key": '"k1"', "content-type": "application/json"},
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert counts(db_url) == before


def _dumps_spaced(body: dict[str, Any]) -> bytes:
    import json

    return json.dumps(body, indent=3).encode()


def test_same_key_different_request_is_422(api: Api, db_url: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    path = f"/v1/groups/{gid}/expenses"
    assert _post(api, a, path, _expense(a, b), "k").status_code == 201
    before = counts(db_url)
    assert_problem(_post(api, a, path, _expense(a, b, "10.01"), "k"), 422, "idempotency-key-reused")
    assert_problem(_post(api, a, path, _expense(a, b, "10.0"), "k"), 422, "idempotency-key-reused")  # as sent
    settle = {"from_user_id": b.id, "to_user_id": a.id, "amount": "1.00"}
    assert_problem(_post(api, a, f"/v1/groups/{gid}/settlements", settle, "k"), 422, "idempotency-key-reused")
    assert counts(db_url) == before


def test_keys_are_scoped_to_the_user(api: Api, db_url: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    path = f"/v1/groups/{gid}/expenses"
    assert _post(api, a, path, _expense(a, b), "shared").status_code == 201
    r = _post(api, b, path, _expense(a, b), "shared")
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers
    assert counts(db_url)["expenses"] == 2


def test_rejected_request_leaves_key_unused(api: Api, db_url: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    path = f"/v1/groups/{gid}/settlements"
    too_much = {"from_user_id": b.id, "to_user_id": a.id, "amount": "1.00"}
    assert_problem(_post(api, a, path, too_much, "s1"), 422, "settlement-exceeds-balance")
    assert counts(db_url)["idempotency_keys"] == 0
    api.expense(a, gid, "10.00", a, [a, b])
    r = _post(api, a, path, too_much, "s1")  # same key, same body: now it commits
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers
    replay = _post(api, a, path, too_much, "s1")
    assert replay.headers["idempotent-replayed"] == "true" and replay.content == r.content
    assert counts(db_url)["settlements"] == 1


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "naïve", '""', '"unterminated'])
def test_bad_key_is_400_and_writes_nothing(api: Api, db_url: URL, key: str) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    before = counts(db_url)
    r = api.client.post(
        f"/v1/groups/{gid}/expenses", json=_expense(a, b), headers=a.headers | {"Idempotency-Key": key.encode("utf-8")}
    )  # type: ignore[dict-item]
    assert_problem(r, 400, "invalid-idempotency-key")
    assert counts(db_url) == before


def test_without_key_requests_are_not_idempotent(api: Api, db_url: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    for _ in range(2):
        assert _post(api, a, f"/v1/groups/{gid}/expenses", _expense(a, b), None).status_code == 201
    assert counts(db_url)["expenses"] == 2 and counts(db_url)["idempotency_keys"] == 0


def test_expired_keys_are_purged_and_reusable(api: Api, db_url: URL, client: TestClient, settings: Settings) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    path = f"/v1/groups/{gid}/expenses"
    assert _post(api, a, path, _expense(a, b), "old").status_code == 201
    assert _post(api, a, path, _expense(a, b), "fresh").status_code == 201
    run_sql(db_url, "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old'")
    # An expired key is not replayed: the request is new (and stores the key again).
    r = _post(api, a, path, _expense(a, b, "3.00"), "old")
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers
    run_sql(db_url, "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old'")

    async def purge() -> int:
        engine = make_engine(db_url, settings)
        try:
            return await purge_expired(engine, settings)
        finally:
            await engine.dispose()

    assert asyncio.run(purge()) == 1
    assert [r["key"] for r in run_sql(db_url, "SELECT key FROM idempotency_keys")] == ["fresh"]
