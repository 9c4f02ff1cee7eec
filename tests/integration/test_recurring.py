"""Recurring rules over HTTP: every endpoint, bad schedules, preconditions, idempotency, visibility."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from tests.api import Api, Who, assert_problem
from tests.dbutil import counts
from tests.recurring_helpers import rule_body

WRITTEN = ("recurring_rules", "activity", "idempotency_keys", "expenses", "ledger_entries")


def post_rule(client: TestClient, who: Who, gid: str, body: dict[str, Any], *, key: str | None = None) -> Any:
    headers = {**who.headers, **({"Idempotency-Key": key} if key is not None else {})}
    return client.post(f"/v1/groups/{gid}/recurring", json=body, headers=headers)


@pytest.fixture
def trio(api: Api) -> tuple[Who, Who, str]:
    a, b = api.user("A"), api.user("B")
    return a, b, api.group(a, members=(b,))


def test_create_get_list(api: Api, client: TestClient, trio: tuple[Who, Who, str]) -> None:
    a, b, gid = trio
    body = rule_body(a, [a, b], amount="100.5", category="home",
                     schedule={"every": "month", "start_date": "2030-01-31", "count": 12})  # fmt: skip
    r = post_rule(client, a, gid, body)
    assert r.status_code == 201, r.text
    rule = r.json()
    assert r.headers["Location"] == f"/v1/groups/{gid}/recurring/{rule['id']}"
    assert r.headers["ETag"] == '"1"'
    assert rule["amount"] == "100.50" and rule["currency"] == "USD" and rule["category"] == "home"
    assert rule["schedule"] == {"every": "month", "interval": 1, "start_date": "2030-01-31", "end_date": None,
                                "count": 12}  # fmt: skip
    assert rule["next_date"] == "2030-01-31" and rule["active"] is True and rule["stop_reason"] is None
    assert rule["version"] == 1 and rule["created_by"] == a.id and rule["participants"][1] == {"user_id": b.id}
    got = client.get(f"/v1/groups/{gid}/recurring/{rule['id']}", headers=b.headers)
    assert got.status_code == 200 and got.json() == rule and got.headers["ETag"] == '"1"'
    second = post_rule(client, b, gid, rule_body(b, [a], schedule={"every": "week", "start_date": "2031-01-01"}))
    listed = client.get(f"/v1/groups/{gid}/recurring", params={"limit": 1}, headers=a.headers).json()
    assert [x["id"] for x in listed["items"]] == [second.json()["id"]]  # newest first
    rest = client.get(f"/v1/groups/{gid}/recurring", params={"cursor": listed["next_cursor"]}, headers=a.headers)
    assert [x["id"] for x in rest.json()["items"]] == [rule["id"]] and rest.json()["next_cursor"] is None
    other = client.get(f"/v1/groups/{gid}/expenses", params={"cursor": listed["next_cursor"]}, headers=a.headers)
    assert_problem(other, 400, "invalid-cursor")
    feed = client.get(f"/v1/groups/{gid}/activity", headers=a.headers).json()["items"]
    created = [i for i in feed if i["type"] == "recurring.created"]
    assert [i["detail"]["recurring_id"] for i in created] == [second.json()["id"], rule["id"]]


def test_foreign_currency_and_several_payers_are_kept_as_entered(
    client: TestClient, trio: tuple[Who, Who, str]
) -> None:
    a, b, gid = trio
    body = rule_body(a, [a, b], amount="10", currency="JPY", exchange_rate="0.0067")
    del body["paid_by"]
    body["payers"] = [{"user_id": a.id, "amount": "6"}, {"user_id": b.id, "amount": "4"}]
    r = post_rule(client, a, gid, body)
    assert r.status_code == 201, r.text
    rule = r.json()
    assert (rule["currency"], rule["exchange_rate"], rule["paid_by"]) == ("JPY", "0.0067", None)
    assert rule["payers"] == [{"user_id": a.id, "amount": "6"}, {"user_id": b.id, "amount": "4"}]


BAD_SCHEDULES = [
    ({"every": "fortnight", "start_date": "2030-01-01"}, ["schedule", "every"]),
    ({"every": "day", "interval": 0, "start_date": "2030-01-01"}, ["schedule", "interval"]),
    ({"every": "day", "interval": 367, "start_date": "2030-01-01"}, ["schedule", "interval"]),
    ({"every": "day", "interval": "2", "start_date": "2030-01-01"}, ["schedule", "interval"]),
    ({"every": "day", "start_date": "2030-01-02", "end_date": "2030-01-01"}, ["schedule", "end_date"]),
    ({"every": "day", "start_date": "2030-01-01", "count": 0}, ["schedule", "count"]),
    ({"every": "day", "start_date": "2030-01-01", "count": 10_001}, ["schedule", "count"]),
    ({"every": "day", "start_date": "2030-01-01", "count": 2, "end_date": "2030-02-01"}, ["schedule", "count"]),
    ({"every": "day", "start_date": "1899-12-31"}, ["schedule", "start_date"]),
    ({"every": "day", "start_date": "2030-01-01", "end_date": "3000-01-01"}, ["schedule", "end_date"]),
    ({"every": "day", "start_date": "2030-02-30"}, ["schedule", "start_date"]),
    ({"every": "day"}, ["schedule", "start_date"]),
    ({"every": "day", "start_date": "2030-01-01", "until": "2030-02-01"}, ["schedule", "until"]),
    # More than recurring_max_due (1000) occurrences already due: made at once, so refused.
    ({"every": "day", "start_date": "2000-01-01"}, ["schedule", "start_date"]),
]


@pytest.mark.parametrize(("schedule", "loc"), BAD_SCHEDULES, ids=[str(i) for i in range(len(BAD_SCHEDULES))])
def test_bad_schedules_are_422_naming_the_field_and_write_nothing(
    client: TestClient, clean_db: URL, trio: tuple[Who, Who, str], schedule: dict[str, Any], loc: list[str]
) -> None:
    a, b, gid = trio
    before = counts(clean_db, WRITTEN)
    r = post_rule(client, a, gid, rule_body(a, [a, b], schedule=schedule), key="k1")
    problem = assert_problem(r, 422, "validation-error")
    assert ["body", *loc] in [e["loc"][: len(loc) + 1] for e in problem["errors"]], problem
    assert counts(clean_db, WRITTEN) == before
    fine = post_rule(client, a, gid, rule_body(a, [a, b]), key="k1")  # the key stayed unused
    assert fine.status_code == 201 and "Idempotent-Replayed" not in fine.headers


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"amount": "0"}, ["amount"]),
        ({"amount": "1.234"}, ["amount"]),
        ({"date": "2030-01-01"}, ["date"]),  # an occurrence's date comes from the schedule
        ({"split_type": "shares"}, ["participants", 0, "shares"]),
        ({"currency": "EUR"}, ["exchange_rate"]),
        ({"schedule": None}, ["schedule"]),
    ],
)
def test_bad_expense_bodies_are_422_too(
    client: TestClient, clean_db: URL, trio: tuple[Who, Who, str], change: dict[str, Any], loc: list[Any]
) -> None:
    a, b, gid = trio
    before = counts(clean_db, WRITTEN)
    problem = assert_problem(post_rule(client, a, gid, {**rule_body(a, [a, b]), **change}), 422)
    assert ["body", *loc] in [e["loc"] for e in problem["errors"]], problem
    assert counts(clean_db, WRITTEN) == before


def test_payer_or_participant_not_a_member_is_422(api: Api, client: TestClient, clean_db: URL,
                                                  trio: tuple[Who, Who, str]) -> None:  # fmt: skip
    a, _, gid = trio
    stranger = api.user("S")
    before = counts(clean_db, WRITTEN)
    problem = assert_problem(post_rule(client, a, gid, rule_body(stranger, [a])), 422, "validation-error")
    assert problem["errors"][0]["loc"] == ["body", "paid_by"]
    problem = assert_problem(post_rule(client, a, gid, rule_body(a, [a, stranger])), 422, "validation-error")
    assert problem["errors"][0]["loc"] == ["body", "participants"]
    assert counts(clean_db, WRITTEN) == before
    rule = post_rule(client, a, gid, rule_body(a, [a])).json()
    before = counts(clean_db, WRITTEN)
    path = f"/v1/groups/{gid}/recurring/{rule['id']}"
    problem = assert_problem(client.put(path, json=rule_body(a, [stranger]), headers=a.headers), 422)
    assert problem["errors"][0]["loc"] == ["body", "participants"]
    assert counts(clean_db, WRITTEN) == before


def test_idempotency_key_on_create(client: TestClient, clean_db: URL, trio: tuple[Who, Who, str]) -> None:
    a, b, gid = trio
    first = post_rule(client, a, gid, rule_body(a, [a, b]), key="rent")
    again = post_rule(client, a, gid, rule_body(a, [a, b]), key="rent")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json() and again.headers["Location"] == first.headers["Location"]
    assert counts(clean_db, ("recurring_rules",))["recurring_rules"] == 1
    assert_problem(post_rule(client, a, gid, rule_body(a, [a]), key="rent"), 422, "idempotency-key-reused")
    assert_problem(post_rule(client, a, gid, rule_body(a, [a]), key=""), 400, "invalid-idempotency-key")


def test_not_a_member_sees_404_everywhere(api: Api, client: TestClient, clean_db: URL,
                                          trio: tuple[Who, Who, str]) -> None:  # fmt: skip
    a, b, gid = trio
    rule = post_rule(client, a, gid, rule_body(a, [a, b])).json()
    outsider = api.user("O")
    other_group = api.group(outsider)
    path = f"/v1/groups/{gid}/recurring/{rule['id']}"
    before = counts(clean_db, WRITTEN)
    for method, url, body in [
        ("POST", f"/v1/groups/{gid}/recurring", rule_body(a, [a])),
        ("POST", f"/v1/groups/{gid}/recurring", rule_body(a, [a], amount="0")),  # invalid, but 404 first
        ("GET", f"/v1/groups/{gid}/recurring", None),
        ("GET", path, None),
        ("PUT", path, rule_body(a, [a])),
        ("DELETE", path, None),
        ("POST", path + "/skip", None),
    ]:
        assert_problem(client.request(method, url, json=body, headers=outsider.headers), 404, "not-found")
    assert_problem(client.get(f"/v1/groups/{other_group}/recurring/{rule['id']}", headers=outsider.headers), 404)
    assert counts(clean_db, WRITTEN) == before


def test_edit_with_if_match(client: TestClient, clean_db: URL, trio: tuple[Who, Who, str]) -> None:
    a, b, gid = trio
    rule = post_rule(client, a, gid, rule_body(a, [a, b])).json()
    path = f"/v1/groups/{gid}/recurring/{rule['id']}"
    edit = rule_body(b, [a, b], amount="45.00", schedule={"every": "month", "interval": 2, "start_date": "2030-01-31"})
    r = client.put(path, json=edit, headers={**b.headers, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == '"2"' and r.json()["version"] == 2 and r.json()["amount"] == "45.00"
    assert r.json()["updated_by"] == b.id and r.json()["created_by"] == a.id
    assert r.json()["schedule"]["interval"] == 2 and r.json()["next_date"] == "2030-01-31"
    before = counts(clean_db, WRITTEN)
    assert_problem(client.put(path, json=rule_body(a, [a]), headers={**a.headers, "If-Match": '"1"'}), 412)
    assert_problem(client.put(path, json=rule_body(a, [a], amount="-1"), headers=a.headers), 422)
    assert counts(clean_db, WRITTEN) == before
    same = client.put(path, json=edit, headers=a.headers)  # equal to the rule: nothing written
    assert same.status_code == 200 and same.headers["ETag"] == '"2"' and same.json() == r.json()
    assert counts(clean_db, WRITTEN) == before
    feed = client.get(f"/v1/groups/{gid}/activity", headers=a.headers).json()["items"]
    assert [(i["type"], i["actor_id"]) for i in feed[:2]] == [("recurring.updated", b.id), ("recurring.created", a.id)]


def test_skip_and_stop(client: TestClient, clean_db: URL, trio: tuple[Who, Who, str]) -> None:
    a, b, gid = trio
    rule = post_rule(client, a, gid, rule_body(
        a, [a, b], schedule={"every": "month", "start_date": "2030-01-31", "count": 2})).json()  # fmt: skip
    path = f"/v1/groups/{gid}/recurring/{rule['id']}"
    assert_problem(client.post(path + "/skip", headers={**a.headers, "If-Match": '"7"'}), 412)
    first = client.post(path + "/skip", headers={**b.headers, "If-Match": '"1"', "Idempotency-Key": "s1"})
    assert first.status_code == 200 and first.json()["next_date"] == "2030-02-28" and first.headers["ETag"] == '"2"'
    replay = client.post(path + "/skip", headers={**b.headers, "If-Match": '"1"', "Idempotency-Key": "s1"})
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json() == first.json()
    last = client.post(path + "/skip", headers=a.headers)  # skipping the last one finishes the rule
    assert last.status_code == 200
    assert (last.json()["active"], last.json()["next_date"], last.json()["stop_reason"]) == (False, None, "finished")
    assert_problem(client.post(path + "/skip", headers=a.headers), 409, "recurring-stopped")
    assert_problem(client.put(path, json=rule_body(a, [a]), headers=a.headers), 409, "recurring-stopped")
    again = client.delete(path, headers=a.headers)  # a finished rule is already stopped: returned as it is
    assert again.status_code == 200 and again.json() == last.json()
    feed = client.get(f"/v1/groups/{gid}/activity", headers=a.headers).json()["items"]
    assert [(i["type"], i["detail"].get("reason") or i["detail"].get("skipped")) for i in feed[:3]] == [
        ("recurring.stopped", "finished"), ("recurring.updated", "2030-02-28"), ("recurring.updated", "2030-01-31")
    ]
    assert counts(clean_db, ("expenses",))["expenses"] == 0


def test_delete_stops_and_repeats(client: TestClient, clean_db: URL, trio: tuple[Who, Who, str]) -> None:
    a, b, gid = trio
    rule = post_rule(client, a, gid, rule_body(a, [a, b])).json()
    path = f"/v1/groups/{gid}/recurring/{rule['id']}"
    assert_problem(client.delete(path, headers={**a.headers, "If-Match": '"9"'}), 412, "precondition-failed")
    stopped = client.delete(path, headers={**b.headers, "If-Match": '"1"', "Idempotency-Key": "stop"})
    assert stopped.status_code == 200 and stopped.headers["ETag"] == '"2"'
    body = stopped.json()
    # A retry under the key replays, though its If-Match no longer matches the (stopped) rule.
    retry = client.delete(path, headers={**b.headers, "If-Match": '"1"', "Idempotency-Key": "stop"})
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == body and retry.headers["ETag"] == '"2"'
    assert_problem(client.post(path + "/skip", headers={**b.headers, "Idempotency-Key": "stop"}), 422,
                   "idempotency-key-reused")  # fmt: skip
    assert (body["active"], body["next_date"], body["stop_reason"]) == (False, None, "stopped")
    assert body["stopped_at"] is not None and body["updated_by"] == a.id  # a stop is not an edit
    before = counts(clean_db, WRITTEN)
    again = client.delete(path, headers=a.headers)
    assert again.status_code == 200 and again.json() == body and again.headers["ETag"] == '"2"'
    assert counts(clean_db, WRITTEN) == before
    feed = client.get(f"/v1/groups/{gid}/activity", headers=a.headers).json()["items"]
    assert feed[0]["type"] == "recurring.stopped" and feed[0]["actor_id"] == b.id
    assert feed[0]["detail"]["reason"] == "stopped" and feed[0]["detail"]["recurring_id"] == rule["id"]
    listed = client.get(f"/v1/groups/{gid}/recurring", headers=a.headers).json()["items"]
    assert [x["active"] for x in listed] == [False]  # stopped rules are listed


def test_malformed_if_match_and_unknown_rule(client: TestClient, trio: tuple[Who, Who, str]) -> None:
    a, b, gid = trio
    rule = post_rule(client, a, gid, rule_body(a, [a, b])).json()
    path = f"/v1/groups/{gid}/recurring/{rule['id']}"
    assert_problem(client.delete(path, headers={**a.headers, "If-Match": ","}), 400, "invalid-header")
    unknown = f"/v1/groups/{gid}/recurring/0190d1c4-5d2e-7000-8000-000000000000"
    for method in ("GET", "DELETE"):
        assert_problem(client.request(method, unknown, headers=a.headers), 404, "not-found")
    assert_problem(client.post(unknown + "/skip", headers=a.headers), 404, "not-found")
    assert_problem(client.put(unknown, json=rule_body(a, [a]), headers=a.headers), 404, "not-found")
