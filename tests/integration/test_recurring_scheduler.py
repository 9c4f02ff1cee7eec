"""The recurring scheduler in-process, its clock driven by the test: months of occurrences in seconds.

Occurrences go through the expense write path (ledger invariants are checked after every test by the
`api` fixture), each (rule, date) at most once: with several schedulers at once, a stale worker, a
lost advance (the unique key), downtime, edits, skips, and members who leave.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from app.domain.recurring_rules import get as get_rule
from app.domain.recurring_scheduler import Scheduler
from app.infra.config import Settings
from app.main import create_app
from tests.api import Api, Who
from tests.dbutil import counts, run_sql
from tests.recurring_helpers import dates_made, rule_body, run_pass

D = dt.date


def create(client: TestClient, who: Who, gid: str, body: dict[str, Any]) -> str:
    r = client.post(f"/v1/groups/{gid}/recurring", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    rule_id: str = r.json()["id"]
    return rule_id


def rule(client: TestClient, who: Who, gid: str, rule_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/groups/{gid}/recurring/{rule_id}", headers=who.headers)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


def test_monthly_catch_up_in_date_order_exactly_once(api: Api, client: TestClient) -> None:
    a, b = api.user("A"), api.user("B")
    gid = api.group(a, members=(b,))
    rid = create(client, a, gid, rule_body(a, [a, b], amount="100.01", category="rent"))
    assert run_pass(client, D(2030, 1, 30)) == 0  # nothing due yet
    assert run_pass(client, D(2030, 6, 15)) == 5  # the service was "down" for months: all of them, once
    assert run_pass(client, D(2030, 6, 15)) == 0
    assert dates_made(client, a, gid, rid) == ["2030-01-31", "2030-02-28", "2030-03-31", "2030-04-30", "2030-05-31"]
    expenses = client.get(f"/v1/groups/{gid}/expenses", headers=a.headers).json()["items"]
    made = expenses[0]
    assert made["recurring_id"] == rid and made["amount"] == "100.01" and made["category"] == "rent"
    assert made["created_by"] == a.id and made["shares"] == [
        {"user_id": min(a.id, b.id), "amount": "50.01"}, {"user_id": max(a.id, b.id), "amount": "50.00"}
    ]
    one = client.get(f"/v1/groups/{gid}/expenses/{made['id']}", headers=a.headers).json()
    assert one == made
    assert rule(client, a, gid, rid)["next_date"] == "2030-06-30" and rule(client, a, gid, rid)["version"] == 6
    owed = next(s["amount"] for s in made["shares"] if s["user_id"] == a.id)
    assert api.nets(a, gid)[a.id] == f"{(50005 - 5 * int(owed.replace('.', ''))) / 100:.2f}"  # paid 5 x 100.01
    feed = client.get(f"/v1/groups/{gid}/activity", headers=a.headers).json()["items"]
    created = [i["detail"]["occurrence_date"] for i in feed if i["type"] == "expense.created"]
    assert created == ["2030-05-31", "2030-04-30", "2030-03-31", "2030-02-28", "2030-01-31"]


def test_count_end_date_and_leap_years(api: Api, client: TestClient) -> None:
    a = api.user("A")
    gid = api.group(a)
    counted = create(client, a, gid, rule_body(a, [a], schedule={
        "every": "year", "start_date": "2028-02-29", "count": 3}))  # fmt: skip
    ended = create(client, a, gid, rule_body(a, [a], schedule={
        "every": "week", "interval": 2, "start_date": "2030-01-01", "end_date": "2030-01-29"}))  # fmt: skip
    run_pass(client, D(2035, 1, 1))
    assert dates_made(client, a, gid, counted) == ["2028-02-29", "2029-02-28", "2030-02-28"]
    assert dates_made(client, a, gid, ended) == ["2030-01-01", "2030-01-15", "2030-01-29"]
    for rid in (counted, ended):
        finished = rule(client, a, gid, rid)
        assert (finished["active"], finished["next_date"], finished["stop_reason"]) == (False, None, "finished")
    feed = client.get(f"/v1/groups/{gid}/activity", headers=a.headers).json()["items"]
    assert sorted(i["detail"]["recurring_id"] for i in feed if i["type"] == "recurring.stopped") == sorted(
        [counted, ended]
    )


def test_edits_apply_to_future_occurrences_and_skips_are_not_made(api: Api, client: TestClient) -> None:
    a, b = api.user("A"), api.user("B")
    gid = api.group(a, members=(b,))
    rid = create(client, a, gid, rule_body(a, [a, b], schedule={"every": "month", "start_date": "2030-01-31"}))
    path = f"/v1/groups/{gid}/recurring/{rid}"
    run_pass(client, D(2030, 2, 28))
    skipped = client.post(path + "/skip", headers=b.headers).json()
    assert skipped["next_date"] == "2030-04-30"
    # New amount, payer and schedule (every 2 months from 15 January): goes on after 31 March.
    edit = rule_body(b, [a, b], amount="60.00", schedule={"every": "month", "interval": 2, "start_date": "2030-01-15"})
    edited = client.put(path, json=edit, headers=b.headers).json()
    assert edited["next_date"] == "2030-05-15"
    run_pass(client, D(2030, 9, 30))
    assert dates_made(client, a, gid, rid) == ["2030-01-31", "2030-02-28", "2030-05-15", "2030-07-15", "2030-09-15"]
    items = client.get(f"/v1/groups/{gid}/expenses", headers=a.headers).json()["items"]
    assert [(e["date"], e["amount"], e["paid_by"], e["created_by"]) for e in reversed(items)] == [
        ("2030-01-31", "30.00", a.id, a.id), ("2030-02-28", "30.00", a.id, a.id),
        ("2030-05-15", "60.00", b.id, b.id), ("2030-07-15", "60.00", b.id, b.id), ("2030-09-15", "60.00", b.id, b.id),
    ]  # fmt: skip
    # An occurrence is an ordinary expense: editing it does not make its date again.
    first = items[-1]
    r = client.put(f"/v1/groups/{gid}/expenses/{first['id']}", json={
        "description": "moved", "amount": "30.00", "paid_by": a.id, "split_type": "equal",
        "participants": [{"user_id": a.id}, {"user_id": b.id}], "date": "2030-12-01"}, headers=a.headers)  # fmt: skip
    assert r.status_code == 200 and r.json()["recurring_id"] == rid
    assert run_pass(client, D(2030, 9, 30)) == 0


def test_an_edit_with_no_occurrence_left_is_422(api: Api, client: TestClient, clean_db: URL) -> None:
    a = api.user("A")
    gid = api.group(a)
    rid = create(client, a, gid, rule_body(a, [a]))
    run_pass(client, D(2030, 2, 28))
    before = counts(clean_db, ("recurring_rules", "activity"))
    ending = rule_body(a, [a], schedule={"every": "month", "start_date": "2030-01-31", "end_date": "2030-03-30"})
    r = client.put(f"/v1/groups/{gid}/recurring/{rid}", json=ending, headers=a.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "schedule"], r.text
    assert counts(clean_db, ("recurring_rules", "activity")) == before
    ending["schedule"]["end_date"] = "2030-03-31"
    assert client.put(f"/v1/groups/{gid}/recurring/{rid}", json=ending, headers=a.headers).json()["next_date"] == (
        "2030-03-31"
    )


def test_a_member_who_left_stops_the_rule_cleanly(api: Api, client: TestClient, clean_db: URL) -> None:
    a, b, c = api.user("A"), api.user("B"), api.user("C")
    gid = api.group(a, members=(b, c))
    rid = create(client, b, gid, rule_body(b, [b, c]))
    author_gone = create(client, a, gid, rule_body(b, [b]))
    kept = create(client, b, gid, rule_body(b, [b]))
    assert client.delete(f"/v1/groups/{gid}/members/{c.id}", headers=a.headers).status_code == 204
    assert client.delete(f"/v1/groups/{gid}/members/{a.id}", headers=b.headers).status_code == 204
    before = counts(clean_db, ("expenses", "ledger_entries"))
    assert run_pass(client, D(2030, 2, 1)) == 1  # only the rule nobody left
    assert dates_made(client, b, gid, kept) == ["2030-01-31"]
    assert counts(clean_db, ("expenses", "ledger_entries"))["expenses"] == before["expenses"] + 1
    for rid_, reason, who in ((rid, "member-left", c.id), (author_gone, "author-left", a.id)):
        stopped = rule(client, b, gid, rid_)
        assert (stopped["active"], stopped["stop_reason"], stopped["next_date"]) == (False, reason, None)
        assert dates_made(client, b, gid, rid_) == []
        feed = client.get(f"/v1/groups/{gid}/activity", headers=b.headers).json()["items"]
        entry = next(i for i in feed if i["type"] == "recurring.stopped" and i["detail"]["recurring_id"] == rid_)
        assert entry["detail"]["reason"] == reason and who in entry["detail"]["message"]
        assert entry["detail"]["occurrence_date"] == "2030-01-31"
    assert run_pass(client, D(2031, 1, 1)) == 11  # the stopped ones stay stopped


def test_bounded_per_pass_in_date_order(api: Api, client: TestClient, settings: Settings) -> None:
    a = api.user("A")
    gid = api.group(a)
    late = create(client, a, gid, rule_body(a, [a], schedule={"every": "day", "start_date": "2030-01-03"}))
    early = create(client, a, gid, rule_body(a, [a], schedule={"every": "day", "start_date": "2030-01-01"}))
    small = settings.model_copy(update={"recurring_max_per_pass": 3, "recurring_batch": 2})
    assert run_pass(client, D(2030, 1, 4), small) == 3
    assert dates_made(client, a, gid, early) == ["2030-01-01", "2030-01-02"]
    assert dates_made(client, a, gid, late) == ["2030-01-03"]
    assert run_pass(client, D(2030, 1, 4), small) == 3
    assert run_pass(client, D(2030, 1, 4), small) == 0
    assert dates_made(client, a, gid, early) == ["2030-01-01", "2030-01-02", "2030-01-03", "2030-01-04"]


def test_concurrent_schedulers_make_each_occurrence_once(api: Api, client: TestClient, settings: Settings) -> None:
    a, b = api.user("A"), api.user("B")
    gid = api.group(a, members=(b,))
    rules = [create(client, a, gid, rule_body(a, [a, b], schedule={"every": "day", "start_date": f"2030-01-0{1 + i % 3}"}))
             for i in range(30)]  # fmt: skip
    state = client.app.state  # type: ignore[attr-defined]
    # No leases at all (0.1 s): every scheduler claims every rule again and again, and races to make it.
    racing = settings.model_copy(update={"recurring_lease_s": 0.1, "recurring_batch": 7})
    schedulers = [Scheduler(engine=state.engine, pool=state.write_pool, settings=racing) for _ in range(4)]

    async def storm() -> list[int]:
        return list(await asyncio.gather(*(s.run_pass(D(2030, 1, 5)) for s in schedulers)))

    made = client.portal.call(storm)  # type: ignore[union-attr]
    expected = sum(5 - i % 3 for i in range(30))
    assert sum(made) == expected
    for i, rid in enumerate(rules):
        assert dates_made(client, a, gid, rid) == [f"2030-01-0{d}" for d in range(1 + i % 3, 6)]


def test_the_same_occurrence_four_times_at_once_is_made_once(
    api: Api, client: TestClient, settings: Settings, clean_db: URL
) -> None:
    """Four workers that read the same due rules race to make each occurrence: one wins, three write nothing."""
    a, b = api.user("A"), api.user("B")
    gid = api.group(a, members=(b,))
    ids = [create(client, a, gid, rule_body(a, [a, b])) for _ in range(20)]
    state = client.app.state  # type: ignore[attr-defined]
    schedulers = [Scheduler(engine=state.engine, pool=state.write_pool, settings=settings) for _ in range(4)]

    async def race() -> list[int]:
        async with state.engine.connect() as conn:
            rules = [await get_rule(conn, uuid.UUID(gid), uuid.UUID(rid)) for rid in ids]
        return list(await asyncio.gather(*(s._occur(r, "USD") for r in rules for s in schedulers)))

    made = client.portal.call(race)  # type: ignore[union-attr]
    assert sum(made) == 20 and sum(s.raced for s in schedulers) == 60
    assert all(dates_made(client, a, gid, rid) == ["2030-01-31"] for rid in ids)
    assert counts(clean_db, ("expenses",))["expenses"] == 20


def test_a_stale_worker_writes_nothing(api: Api, client: TestClient, clean_db: URL) -> None:
    """A worker that read the rule, then stalled (or was killed) while another made the occurrence."""
    a = api.user("A")
    gid = api.group(a)
    rid = create(client, a, gid, rule_body(a, [a]))
    state = client.app.state  # type: ignore[attr-defined]

    async def read() -> Any:
        async with state.engine.connect() as conn:
            return await get_rule(conn, uuid.UUID(gid), uuid.UUID(rid))

    stale = client.portal.call(read)  # type: ignore[union-attr]
    assert run_pass(client, D(2030, 1, 31)) == 1
    before = counts(clean_db, ("expenses", "ledger_entries", "activity"))
    assert client.portal.call(state.scheduler._occur, stale, "USD") == 0  # type: ignore[union-attr]
    assert counts(clean_db, ("expenses", "ledger_entries", "activity")) == before
    assert dates_made(client, a, gid, rid) == ["2030-01-31"]


def test_the_unique_key_is_the_final_guard(api: Api, client: TestClient, clean_db: URL) -> None:
    """An advance lost by a bug (simulated: the rule moved back by hand) never makes a date twice."""
    a = api.user("A")
    gid = api.group(a)
    rid = create(client, a, gid, rule_body(a, [a]))
    assert run_pass(client, D(2030, 2, 28)) == 2
    run_sql(clean_db, "UPDATE recurring_rules SET next_index = 0, next_date = '2030-01-31', last_date = NULL")
    assert run_pass(client, D(2030, 3, 31)) == 1  # 31 January and 28 February exist: only 31 March is new
    assert dates_made(client, a, gid, rid) == ["2030-01-31", "2030-02-28", "2030-03-31"]
    feed = client.get(f"/v1/groups/{gid}/activity", headers=a.headers).json()["items"]
    assert [i["detail"]["already_made"] for i in feed if "already_made" in (i["detail"] or {})] == [
        "2030-02-28", "2030-01-31"
    ]


def test_a_past_start_date_is_made_within_5_seconds(api: Api, settings: Settings, clean_db: URL) -> None:
    """With the scheduler running (its interval a minute: the creating worker wakes it at once)."""
    live = settings.model_copy(update={"recurring_scheduler": True, "recurring_interval_ms": 60_000})
    today = dt.datetime.now(dt.UTC).date()
    with TestClient(create_app(live)) as client:
        served = Api(client)
        a = served.user("A")
        gid = served.group(a)
        started = time.monotonic()
        rid = create(client, a, gid, rule_body(a, [a], schedule={
            "every": "day", "start_date": (today - dt.timedelta(days=2)).isoformat()}))  # fmt: skip
        while len(dates_made(client, a, gid, rid)) < 3 and time.monotonic() - started < 5:
            time.sleep(0.05)
        assert dates_made(client, a, gid, rid) == [(today - dt.timedelta(days=d)).isoformat() for d in (2, 1, 0)]
        assert rule(client, a, gid, rid)["next_date"] == (today + dt.timedelta(days=1)).isoformat()


# 999 expenses of 10^12 yen paid by $2 for $3, through the very write function, in one statement.
_NEAR_THE_LIMIT = """
DO $$
DECLARE
    v_row jsonb;
BEGIN
    FOR i IN 1..999 LOOP
        v_row := jsonb_build_object(
            'id', gen_random_uuid(), 'group_id', '{g}', 'description', 'big', 'currency', 'JPY',
            'amount_minor', 1000000000000, 'group_currency', 'JPY', 'group_amount_minor', 1000000000000,
            'paid_by', '{a}', 'payers', jsonb_build_array(jsonb_build_array('{a}', 1000000000000)),
            'split_type', 'equal', 'shares', jsonb_build_array(jsonb_build_array('{b}', 1000000000000)),
            'date', '2029-12-31', 'version', 1, 'created_by', '{a}', 'created_at', now(),
            'updated_by', '{a}', 'updated_at', now());
        PERFORM quits_expense_create('{g}', jsonb_build_object(
            'caller', '{a}', 'expense', v_row,
            'entries', jsonb_build_array(jsonb_build_array('{a}', 1000000000000), jsonb_build_array('{b}', -1000000000000)),
            'members', jsonb_build_array(jsonb_build_array('paid_by', '{a}'), jsonb_build_array('participants', '{b}'))));
    END LOOP;
END
$$
"""


def test_the_balance_limit_stops_a_rule(api: Api, client: TestClient, clean_db: URL) -> None:
    """Occurrences pass the same balance limit as a POST: with 999 x 10^12 yen already owed, the second
    occurrence would take the group's positive nets past 10^15, so the rule stops there, with nothing of
    that occurrence written."""
    a, b = api.user("A"), api.user("B")
    gid = api.group(a, currency="JPY", members=(b,))
    run_sql(clean_db, _NEAR_THE_LIMIT.format(g=gid, a=a.id, b=b.id))
    rid = create(client, a, gid, rule_body(a, [b], amount="1000000000000", schedule={
        "every": "day", "start_date": "2030-01-01"}))  # fmt: skip
    assert run_pass(client, D(2030, 1, 5)) == 1
    stopped = rule(client, a, gid, rid)
    assert (stopped["active"], stopped["stop_reason"]) == (False, "balance-limit-exceeded")
    assert dates_made(client, a, gid, rid) == ["2030-01-01"]
    assert api.nets(a, gid)[a.id] == "1000000000000000"
    assert counts(clean_db, ("expenses",))["expenses"] == 1_000
    feed = client.get(f"/v1/groups/{gid}/activity", params={"limit": 1}, headers=a.headers).json()["items"]
    assert feed[0]["detail"]["reason"] == "balance-limit-exceeded"
    assert feed[0]["detail"]["occurrence_date"] == "2030-01-02"


def test_the_functions_refuse_a_change_without_its_version(api: Api, client: TestClient, clean_db: URL) -> None:
    """The database does not take the app's word for it: no expected version, no write."""
    a = api.user("A")
    gid = api.group(a)
    rid = create(client, a, gid, rule_body(a, [a]))
    stored = json.loads(run_sql(clean_db, "SELECT to_jsonb(r) AS doc FROM recurring_rules r")[0]["doc"])
    stopped = {**stored, "version": 2, "active": False, "next_date": None, "stop_reason": "stopped",
               "stopped_at": "2030-01-01T00:00:00Z"}  # fmt: skip
    stop = {"caller": a.id, "rule": stopped, "activity": [], "at": "2030-01-01T00:00:00Z"}  # no expected_version
    with pytest.raises(asyncpg.PostgresError) as refused:
        run_sql(clean_db, "SELECT * FROM quits_recurring_update($1, $2::jsonb)", uuid.UUID(gid), json.dumps(stop))
    assert refused.value.sqlstate == "QUR12"
    expense = {"id": str(uuid.uuid4()), "group_id": gid, "description": "x", "currency": "USD", "amount_minor": 1,
               "group_currency": "USD", "group_amount_minor": 1, "paid_by": a.id, "payers": [[a.id, 1]],
               "split_type": "equal", "shares": [[a.id, 1]], "date": "2030-01-31", "version": 1, "created_by": a.id,
               "created_at": "2030-01-31T00:00:00Z", "updated_by": a.id, "updated_at": "2030-01-31T00:00:00Z",
               "recurring_id": rid, "occurrence_date": "2030-01-31"}  # fmt: skip
    cmd = {"caller": a.id, "expense": expense, "entries": [[a.id, 1], [a.id, -1]], "members": [["paid_by", a.id]]}
    with pytest.raises(asyncpg.PostgresError) as refused:  # an occurrence without "occurrence"
        run_sql(clean_db, "SELECT * FROM quits_expense_create($1, $2::jsonb)", uuid.UUID(gid), json.dumps(cmd))
    assert refused.value.sqlstate == "QUR12"
    assert counts(clean_db, ("expenses",))["expenses"] == 0 and rule(client, a, gid, rid)["version"] == 1
