"""Contract v2: ETag on expenses, If-Match on PUT and DELETE (412, nothing written), an edit equal to
the current version writes nothing, Idempotency-Key on PUT and DELETE, Location on every 201."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL

from tests.api import Api, Who, assert_problem
from tests.dbutil import counts


def _setup(api: Api) -> tuple[Who, Who, str, dict[str, Any], dict[str, Any]]:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    body = {"description": "Dinner", "amount": "30.00", "paid_by": a.id, "split_type": "equal",
            "participants": [{"user_id": a.id}, {"user_id": b.id}]}  # fmt: skip
    r = api.client.post(f"/v1/groups/{gid}/expenses", json=body, headers=a.headers)
    assert r.status_code == 201, r.text
    assert r.headers["ETag"] == '"1"'
    assert r.headers["Location"] == f"/v1/groups/{gid}/expenses/{r.json()['id']}"
    return a, b, gid, body, r.json()


def test_put_with_a_stale_if_match_is_412_and_writes_nothing(api: Api, clean_db: URL) -> None:
    a, b, gid, body, e = _setup(api)
    path = f"/v1/groups/{gid}/expenses/{e['id']}"
    first = api.client.put(path, json={**body, "amount": "40.00"}, headers={**a.headers, "If-Match": '"1"'})
    assert first.status_code == 200 and first.json()["version"] == 2 and first.headers["ETag"] == '"2"'
    before = counts(clean_db)
    stale = api.client.put(path, json={**body, "amount": "50.00"}, headers={**b.headers, "If-Match": '"1"'})
    assert_problem(stale, 412, "precondition-failed")
    assert counts(clean_db) == before
    stale_void = api.client.delete(path, headers={**b.headers, "If-Match": '"1"'})
    assert_problem(stale_void, 412, "precondition-failed")
    assert counts(clean_db) == before
    got = api.client.get(path, headers=a.headers)
    assert got.json()["amount"] == "40.00" and got.headers["ETag"] == '"2"'


def test_if_match_star_and_the_current_tag_proceed_and_a_void_changes_the_tag(api: Api) -> None:
    a, _, gid, body, e = _setup(api)
    path = f"/v1/groups/{gid}/expenses/{e['id']}"
    r = api.client.put(path, json={**body, "amount": "31.00"}, headers={**a.headers, "If-Match": "*"})
    assert r.status_code == 200 and r.headers["ETag"] == '"2"'
    v = api.client.delete(path, headers={**a.headers, "If-Match": '"0", "2"'})
    assert v.status_code == 200 and v.json()["voided_at"] and v.headers["ETag"] == '"2-voided"'
    again = api.client.delete(path, headers={**a.headers, "If-Match": '"2-voided"'})
    assert again.status_code == 200 and again.json() == v.json()


def test_an_edit_equal_to_the_current_version_writes_nothing(api: Api, clean_db: URL) -> None:
    a, _, gid, body, e = _setup(api)
    before = counts(clean_db)
    r = api.client.put(f"/v1/groups/{gid}/expenses/{e['id']}", json=body, headers=a.headers)
    assert r.status_code == 200 and r.json() == e and r.headers["ETag"] == '"1"'
    assert counts(clean_db) == before


def test_idempotency_key_on_put_and_delete_replays(api: Api, clean_db: URL) -> None:
    a, _, gid, body, e = _setup(api)
    path = f"/v1/groups/{gid}/expenses/{e['id']}"
    put = {**a.headers, "Idempotency-Key": "edit-1"}
    first = api.client.put(path, json={**body, "amount": "12.00"}, headers=put)
    after_first = counts(clean_db)
    again = api.client.put(path, json={**body, "amount": "12.00"}, headers=put)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true" and counts(clean_db) == after_first
    other = api.client.put(path, json={**body, "amount": "13.00"}, headers=put)
    assert_problem(other, 422, "idempotency-key-reused")
    delete = {**a.headers, "Idempotency-Key": "void-1"}
    voided = api.client.delete(path, headers=delete)
    after_void = counts(clean_db)
    replay = api.client.delete(path, headers=delete)
    assert replay.json() == voided.json() and replay.headers["Idempotent-Replayed"] == "true"
    assert counts(clean_db) == after_void


def test_a_malformed_if_match_is_400(api: Api, clean_db: URL) -> None:
    a, _, gid, body, e = _setup(api)
    before = counts(clean_db)
    r = api.client.put(f"/v1/groups/{gid}/expenses/{e['id']}", json=body, headers={**a.headers, "If-Match": " , "})
    assert_problem(r, 400, "invalid-header")
    assert counts(clean_db) == before


def test_location_on_every_201(api: Api) -> None:
    a = api.user()
    u = api.client.post("/v1/users", json={"name": "L", "email": "loc@example.com"})
    assert u.status_code == 201 and u.headers["Location"] == "/v1/users/me"
    g = api.client.post("/v1/groups", json={"name": "G", "currency": "USD"}, headers=a.headers)
    gid = g.json()["id"]
    assert g.headers["Location"] == f"/v1/groups/{gid}"
    m = api.client.post(f"/v1/groups/{gid}/members", json={"user_id": u.json()["id"]}, headers=a.headers)
    assert m.status_code == 201 and m.headers["Location"] == f"/v1/groups/{gid}/members"
    api.expense(a, gid, "10.00", a, [{"user_id": a.id}, {"user_id": u.json()["id"]}])
    s = api.client.post(
        f"/v1/groups/{gid}/settlements",
        json={"from_user_id": u.json()["id"], "to_user_id": a.id, "amount": "1.00"},
        headers=a.headers,
    )
    assert s.status_code == 201 and s.headers["Location"] == f"/v1/groups/{gid}/settlements/{s.json()['id']}"
