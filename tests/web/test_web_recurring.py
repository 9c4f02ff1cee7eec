"""Recurring expenses in the web app through the in-process app: create (the expense's and the schedule's
refusals next to their fields, nothing written), the list (next date, what is left, stopped with the
reason), skip the next one, stop, and a double submission of each form: one write."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from tests.dbutil import counts, run_sql
from tests.web.test_web_forms import expense, refused, trip
from tests.web.webclient import Person, idem_of

WRITES = ("recurring_rules", "expenses", "activity", "idempotency_keys")
START = "2031-01-31"  # in the future: the scheduler (off in these tests anyway) makes nothing


@pytest.fixture
def ann(client: TestClient, clean_db: URL) -> Person:
    return Person(client, "Ann").sign_up()


def rule(ids: dict[str, str], **fields: Any) -> dict[str, Any]:
    """The recurring form as a person fills it: an expense (the expense form's fields) plus a schedule."""
    data = expense(ids, description="Rent", amount="900.00")
    data.update({"every": "month", "interval": "1", "start_date": START, "end_date": "", "count": "3"})
    data.update(fields)
    return data


def rules_of(db: URL, gid: str) -> list[Any]:
    return run_sql(db, "SELECT * FROM recurring_rules WHERE group_id = $1 ORDER BY created_at", uuid.UUID(gid))


def new_form(ann: Person, gid: str) -> str:
    page = ann.get(f"/groups/{gid}/recurring/new")
    assert page.status_code == 200, page.text
    return page.text


def test_create_lists_the_rule(ann: Person, clean_db: URL) -> None:
    gid, ids = trip(ann)
    assert "No recurring expenses yet" in ann.get(f"/groups/{gid}/recurring").text
    form = new_form(ann, gid)
    assert 'id="f-start_date"' in form and 'id="f-description"' in form and 'id="f-date"' not in form
    r = ann.post(f"/groups/{gid}/recurring", rule(ids, idem=idem_of(form)))
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/groups/{gid}/recurring?done=created"
    [row] = rules_of(clean_db, gid)
    assert row["every"] == "month" and row["count"] == 3 and row["next_date"] == dt.date(2031, 1, 31)
    template = json.loads(row["template"])
    assert template["amount"] == "900.00" and template["split_type"] == "equal"
    page = ann.get(r.headers["location"]).text
    assert "Recurring expense saved." in page
    assert "Rent" in page and "$900.00" in page and "Every month from Jan 31, 2031" in page
    assert "3 times, 3 left" in page and "Next: <strong>Jan 31, 2031</strong>" in page
    assert counts(clean_db, ("expenses",))["expenses"] == 0  # made by the scheduler, on its dates
    assert "Recurring" in ann.get(f"/groups/{gid}").text  # linked from the group page


def test_the_preview_is_the_expense_split(ann: Person, clean_db: URL) -> None:
    gid, ids = trip(ann)
    new_form(ann, gid)
    r = ann.post(f"/groups/{gid}/recurring", rule(ids, amount="10.01", action="preview"))  # the no-JS preview
    assert r.status_code == 200 and "$5.01" in r.text and "$5.00" in r.text
    r = ann.post(f"/groups/{gid}/expenses/preview", rule(ids, amount="10.00"), headers={"HX-Request": "true"})
    assert r.status_code == 200 and "owes $5.00" in r.text  # htmx posts the rule form to the same preview
    assert counts(clean_db, WRITES)["recurring_rules"] == 0


SCHEDULE_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("no start date", {"start_date": ""}, "start_date", "Enter the date of the first one"),
    ("not a date", {"start_date": "2031-02-30"}, "start_date", "calendar date"),
    ("end before start", {"count": "", "end_date": "2030-12-31"}, "end_date", "must not be before first date"),
    ("end and count", {"end_date": "2031-12-31"}, "count", "not both"),
    ("zero interval", {"interval": "0"}, "interval", "greater than or equal to 1"),
    ("interval not a number", {"interval": "two"}, "interval", "whole number"),
    ("interval too large", {"interval": "367"}, "interval", "less than or equal to 366"),
    ("zero count", {"count": "0"}, "count", "greater than or equal to 1"),
    ("unknown unit", {"every": "fortnight"}, "every", "'day', 'week', 'month' or 'year'"),
    ("too many due", {"every": "day", "count": "", "start_date": "2000-01-01"}, "start_date", "later first date"),
    ("bad amount", {"amount": "12,50"}, "amount", "decimal string"),
    ("no description", {"description": ""}, "description", "Enter what the expense was for"),
]


@pytest.mark.parametrize(("case", "change", "field", "needle"), SCHEDULE_CASES, ids=[c[0] for c in SCHEDULE_CASES])
def test_create_refusals(ann: Person, clean_db: URL, case: str, change: dict[str, Any], field: str,
                         needle: str) -> None:  # fmt: skip
    gid, ids = trip(ann)
    new_form(ann, gid)
    before = counts(clean_db, WRITES)
    r = ann.post(f"/groups/{gid}/recurring", rule(ids, **change))
    assert r.status_code == 422, r.text
    refused(r.text, field, needle)
    assert counts(clean_db, WRITES) == before


def test_split_refusal_next_to_the_row(ann: Person, clean_db: URL) -> None:
    gid, ids = trip(ann)
    new_form(ann, gid)
    before = counts(clean_db, WRITES)
    pct = {f"pct_{ids['ann']}": "60", f"pct_{ids['bob']}": "30"}
    r = ann.post(f"/groups/{gid}/recurring", {**rule(ids, split_type="percentage"), **pct})
    assert r.status_code == 422
    refused(r.text, "participants", "100")
    assert counts(clean_db, WRITES) == before


def test_double_submission_makes_one_rule(ann: Person, clean_db: URL) -> None:
    gid, ids = trip(ann)
    data = rule(ids, idem=idem_of(new_form(ann, gid)))
    first, second = ann.post(f"/groups/{gid}/recurring", data), ann.post(f"/groups/{gid}/recurring", data)
    assert first.status_code == second.status_code == 303, (first.text, second.text)
    assert len(rules_of(clean_db, gid)) == 1
    other = ann.post(f"/groups/{gid}/recurring", {**data, "amount": "901.00"})
    assert other.status_code == 409 and "already used to save something else" in other.text
    assert len(rules_of(clean_db, gid)) == 1
    again = ann.post(f"/groups/{gid}/recurring", rule(ids, idem=idem_of(new_form(ann, gid))))  # a new form: a new rule
    assert again.status_code == 303 and len(rules_of(clean_db, gid)) == 2


def _buttons(page: str) -> dict[str, dict[str, str]]:
    """The skip and stop forms of the list: action → its hidden fields."""
    found = {}
    for action, body in re.findall(r'<form method="post" action="([^"]+/(?:skip|stop))" class="inline">(.*?)</form>',
                                   page, re.S):  # fmt: skip
        fields = re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', body)
        found[action] = {name: html.unescape(value) for name, value in fields}
    return found


def _made(ann: Person, db: URL, gid: str, ids: dict[str, str], **fields: Any) -> tuple[str, dict[str, dict[str, str]]]:
    """A rule made through the form: its id, and the list's skip and stop forms."""
    r = ann.post(f"/groups/{gid}/recurring", rule(ids, idem=idem_of(new_form(ann, gid)), **fields))
    assert r.status_code == 303, r.text
    page = ann.get(f"/groups/{gid}/recurring").text
    return str(rules_of(db, gid)[-1]["id"]), _buttons(page)


def test_skip_then_stop(ann: Person, clean_db: URL) -> None:
    gid, ids = trip(ann)
    rule_id, buttons = _made(ann, clean_db, gid, ids)
    skip, stop = buttons[f"/groups/{gid}/recurring/{rule_id}/skip"], buttons[f"/groups/{gid}/recurring/{rule_id}/stop"]
    assert skip["if_match"] == '"1"' and skip["idem"] != stop["idem"]

    first = ann.post(f"/groups/{gid}/recurring/{rule_id}/skip", skip)
    second = ann.post(f"/groups/{gid}/recurring/{rule_id}/skip", skip)  # a double click: one skip
    assert first.status_code == second.status_code == 303, (first.text, second.text)
    [row] = rules_of(clean_db, gid)
    assert row["next_date"] == dt.date(2031, 2, 28) and row["next_index"] == 1 and row["version"] == 2
    page = ann.get(first.headers["location"]).text
    assert "The next one was skipped." in page and "3 times, 2 left" in page and "Feb 28, 2031" in page

    stale = ann.post(f"/groups/{gid}/recurring/{rule_id}/skip", {**skip, "idem": "web-another-click"})
    assert stale.status_code == 409 and "changed meanwhile" in stale.text  # the version shown is gone
    assert rules_of(clean_db, gid)[0]["next_index"] == 1

    for _ in range(2):  # stopped once
        r = ann.post(f"/groups/{gid}/recurring/{rule_id}/stop", stop)
        assert r.status_code == 303, r.text
    [row] = rules_of(clean_db, gid)
    assert not row["active"] and row["stop_reason"] == "stopped" and row["next_date"] is None
    stopped = run_sql(clean_db, "SELECT count(*) AS n FROM activity WHERE type = 'recurring.stopped'")[0]["n"]
    assert stopped == 1
    page = ann.get(r.headers["location"]).text
    assert "Recurring expense stopped." in page and "Stopped by a member" in page and 'class="badge">Stopped' in page
    assert f"/recurring/{rule_id}/skip" not in page  # no buttons on a stopped rule

    refused_skip = ann.post(f"/groups/{gid}/recurring/{rule_id}/skip", {"idem": "web-late", "if_match": ""})
    assert refused_skip.status_code == 409 and "is stopped" in refused_skip.text


def test_skipping_the_last_one_finishes(ann: Person, clean_db: URL) -> None:
    gid, ids = trip(ann)
    rule_id, buttons = _made(ann, clean_db, gid, ids, count="1")
    r = ann.post(f"/groups/{gid}/recurring/{rule_id}/skip", buttons[f"/groups/{gid}/recurring/{rule_id}/skip"])
    assert r.status_code == 303
    page = ann.get(f"/groups/{gid}/recurring").text
    assert 'class="badge">Finished' in page and "Finished: the last one was made or skipped" in page
    assert "1 time, 0 left" in page


def test_not_a_member_sees_nothing(client: TestClient, ann: Person, clean_db: URL) -> None:
    gid, ids = trip(ann)
    rule_id, _ = _made(ann, clean_db, gid, ids)
    eve = Person(client, "Eve").sign_up()
    assert eve.get(f"/groups/{gid}/recurring").status_code == 404
    assert eve.get(f"/groups/{gid}/recurring/new").status_code == 404
    eve.get("/")
    r = eve.post(f"/groups/{gid}/recurring/{rule_id}/stop", {"idem": "web-eve"})
    assert r.status_code == 404
    assert rules_of(clean_db, gid)[0]["active"]
    r = eve.post(f"/groups/{gid}/recurring", rule(ids, idem="web-eve-rule"))
    assert r.status_code == 404 and len(rules_of(clean_db, gid)) == 1
