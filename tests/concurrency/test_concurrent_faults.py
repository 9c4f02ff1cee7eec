"""Injected transient failures (X-Test-Fault): retried with real rollbacks, or 503 and nothing written."""

from __future__ import annotations

import uuid

import pytest

from tests.api import Who, assert_problem
from tests.concurrency.helpers import Live

CODES = ["40001", "40P01", "55P03"]
ENDPOINTS = ["expenses", "settlements"]


def _setup(live: Live) -> tuple[Who, Who, str]:
    api = live.api()
    a, b = api.user("A"), api.user("B")
    gid = api.group(a, members=(b,))
    api.expense(a, gid, "100.00", a, [b])  # b owes a 100.00, so settlements have room
    return a, b, gid


def _body(endpoint: str, a: Who, b: Who) -> dict[str, object]:
    if endpoint == "expenses":
        return {
            "description": "f",
            "amount": "10.00",
            "paid_by": a.id,
            "split_type": "equal",
            "participants": [{"user_id": a.id}, {"user_id": b.id}],
        }
    return {"from_user_id": b.id, "to_user_id": a.id, "amount": "10.00"}


def _state(live: Live) -> dict[str, int]:
    return {t: live.count(t) for t in ("expenses", "settlements", "ledger_entries", "idempotency_keys")}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("code", CODES)
def test_transient_faults_are_retried_and_write_once(live: Live, code: str, endpoint: str) -> None:
    live.allow(conflicts=[code])
    a, b, gid = _setup(live)
    path = f"/v1/groups/{gid}/{endpoint}"
    body = _body(endpoint, a, b)
    table = endpoint
    with live.client() as c:
        # Without a key.
        before = _state(live)
        r = c.post(path, json=body, headers={**a.headers, "X-Test-Fault": f"{code}:2"})
        assert r.status_code == 201, r.text
        after = _state(live)
        assert after[table] - before[table] == 1
        assert after["ledger_entries"] - before["ledger_entries"] == (3 if endpoint == "expenses" else 2)
        assert after["idempotency_keys"] == before["idempotency_keys"]
        assert live.retries(code) == 2, live.log()  # two real rollbacks, then the commit

        # With a key: the faults-then-success path stores the key once, and it replays.
        key = "fault-" + uuid.uuid4().hex
        before = after
        r = c.post(path, json=body, headers={**a.headers, "X-Test-Fault": f"{code}:2", "Idempotency-Key": key})
        assert r.status_code == 201, r.text
        assert "idempotent-replayed" not in r.headers
        after = _state(live)
        assert after[table] - before[table] == 1
        assert after["idempotency_keys"] - before["idempotency_keys"] == 1
        stored = live.sql("SELECT status_code, response_body FROM idempotency_keys WHERE key = $1", key)
        assert [(s["status_code"], s["response_body"]) for s in stored] == [(201, r.text)]
        assert live.retries(code) == 4
        again = c.post(path, json=body, headers={**a.headers, "Idempotency-Key": key})
        assert again.status_code == 201 and again.content == r.content
        assert again.headers["idempotent-replayed"] == "true"
        assert _state(live) == after


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("code", CODES)
def test_persistent_faults_give_503_and_write_nothing(live: Live, code: str, endpoint: str) -> None:
    live.allow(conflicts=[code], statuses=[503])
    a, b, gid = _setup(live)
    path = f"/v1/groups/{gid}/{endpoint}"
    body = _body(endpoint, a, b)
    key = "doomed-" + uuid.uuid4().hex
    before = _state(live)
    with live.client() as c:
        for headers in ({}, {"Idempotency-Key": key}):
            r = c.post(path, json=body, headers={**a.headers, **headers, "X-Test-Fault": f"{code}:50"})
            assert_problem(r, 503)
            assert int(r.headers["retry-after"]) >= 1
            assert _state(live) == before  # nothing half-written, and the key is not remembered
        attempts = live.retries(code)
        assert attempts >= 4 and attempts % 2 == 0, live.log()  # every attempt of both requests failed

        # The key was left unused: the same request without the fault now creates it normally.
        r = c.post(path, json=body, headers={**a.headers, "Idempotency-Key": key})
        assert r.status_code == 201, r.text
        assert "idempotent-replayed" not in r.headers
        after = _state(live)
        assert after[endpoint] - before[endpoint] == 1
        assert after["idempotency_keys"] - before["idempotency_keys"] == 1
