"""A whole trip in real headless Chromium: sign up, a group, a guest and a member, expenses of every split
mode (two payers, a foreign currency), the live split preview, a refused input, a double submission, an
edit conflict between two browser sessions, a void, settling up from the suggestions until every balance
is zero, the activity and an expense's history; axe-core on every page, screenshots at 375 and 1280 px."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from tests.concurrency.helpers import Server
from tests.dbutil import assert_ledger_invariants, run_sql
from tests.web.conftest import axe_violations, dark, screenshot
from tests.web.pages import (
    by_id,
    choose,
    css,
    css_all,
    fill,
    follow,
    group_id,
    set_row,
    sign_up,
    submit,
    text,
    wait_for,
)

PASSWORD = "a long trip password"
Driver = Any


def check_page(d: Driver, name: str) -> None:
    """No serious or critical accessibility violation, and the page at 375 and 1280 px for a reviewer."""
    violations = axe_violations(d)
    assert violations == [], f"{name}: {violations}"
    screenshot(d, name)


def expense_count(db: URL, gid: str) -> int:
    return int(run_sql(db, "SELECT count(*) AS n FROM expenses WHERE group_id = $1", uuid.UUID(gid))[0]["n"])


def new_expense(d: Driver, base: str, gid: str, description: str, amount: str) -> None:
    d.get(f"{base}/groups/{gid}/expenses/new")
    fill(d, "f-description", description)
    fill(d, "f-amount", amount)


def set_date(d: Driver, element_id: str, value: str) -> None:
    """A date input's value as YYYY-MM-DD (typing into it depends on the browser's locale)."""
    d.execute_script("arguments[0].value = arguments[1]", by_id(d, element_id), value)


def recurring_rule(d: Driver, base: str, gid: str, db: URL) -> None:
    """A monthly rent, three times from 31 January 2031: refused first (an end date and a count), then
    saved; its next one skipped (28 February), then stopped; axe and screenshots on each page."""
    d.get(f"{base}/groups/{gid}")
    follow(d, "Recurring")
    assert "No recurring expenses yet" in text(d)
    follow(d, "Set up a recurring expense")
    fill(d, "f-description", "Rent")
    fill(d, "f-amount", "900.00")
    wait_for(lambda: "owes $300.00" in by_id(d, "preview").text, "the live preview of the rule's split")
    set_date(d, "f-start_date", "2031-01-31")
    set_date(d, "f-end_date", "2031-12-31")
    fill(d, "f-count", "3")
    check_page(d, "recurring-form")
    submit(d, "Save recurring expense")
    assert "not both" in by_id(d, "f-count-error").text
    assert by_id(d, "f-count").get_attribute("aria-invalid") == "true"
    assert int(run_sql(db, "SELECT count(*) AS n FROM recurring_rules")[0]["n"]) == 0
    set_date(d, "f-end_date", "")
    submit(d, "Save recurring expense")
    assert "Recurring expense saved." in text(d)
    assert "3 times, 3 left" in text(d) and "Next: Jan 31, 2031" in text(d), text(d)
    check_page(d, "recurring")
    submit(d, "Skip next")
    assert "The next one was skipped." in text(d) and "Next: Feb 28, 2031" in text(d), text(d)
    dark(d)
    check_page(d, "recurring-dark")
    dark(d, on=False)
    submit(d, "Stop")
    assert "Recurring expense stopped." in text(d) and "Stopped by a member" in text(d)
    check_page(d, "recurring-stopped")
    rule = run_sql(db, "SELECT active, next_index, stop_reason FROM recurring_rules WHERE group_id = $1", uuid.UUID(gid))
    assert [dict(r) for r in rule] == [{"active": False, "next_index": 1, "stop_reason": "stopped"}]
    d.get(f"{base}/groups/{gid}")


def export_and_import_back(d: Driver, base: str, gid: str, db: URL, downloads: Path) -> None:
    """The group's CSV downloaded from its link, a broken copy refused (each fault listed next to the
    file field), then the download imported as a new group: the same balances and records."""
    d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    d.get(f"{base}/groups/{gid}")
    follow_download = next(a for a in css_all(d, "a") if a.text == "Export as CSV")
    follow_download.click()
    path = downloads / f"quits-{gid}.csv"
    wait_for(lambda: path.exists() and not list(downloads.glob("*.crdownload")), "the CSV download")
    exported = path.read_text(encoding="utf-8")
    assert exported.startswith("Date,Description,Category,Cost,Currency,"), exported
    broken = downloads / "broken.csv"
    lines = exported.splitlines()
    broken.write_text("\n".join([lines[0], lines[1].replace(",USD,", ",USD,x", 1), *lines[2:]]) + "\n")
    d.get(f"{base}/import")
    by_id(d, "f-file").send_keys(str(broken))
    fill(d, "f-me", "Alice")
    fill(d, "f-name", "Lisbon again")
    submit(d, "Import")
    assert "must be a decimal number" in by_id(d, "f-file-error").text, text(d)
    check_page(d, "import-refused")
    by_id(d, "f-file").send_keys(str(path))
    submit(d, "Import")
    assert "Group imported." in text(d), text(d)
    check_page(d, "group-imported")
    new = group_id(d)
    assert new != gid

    def facts(group: str) -> list[Any]:
        return [dict(r) for r in run_sql(db, """
            SELECT (SELECT count(*) FROM expenses WHERE group_id = $1 AND voided_at IS NULL) AS expenses,
                   (SELECT count(*) FROM settlements WHERE group_id = $1 AND voided_at IS NULL) AS payments,
                   (SELECT array_agg(net_minor ORDER BY net_minor) FROM member_balances WHERE group_id = $1) AS nets
            """, uuid.UUID(group))]  # fmt: skip

    assert facts(new) == facts(gid)


def test_a_whole_trip(web_server: Server, clean_db: URL, browsers: Callable[..., Driver], tmp_path: Path) -> None:
    base = web_server.base_url
    alice, carol = browsers(), browsers()
    tag = uuid.uuid4().hex[:6]

    alice.get(base + "/")
    check_page(alice, "landing")
    alice.get(base + "/signin")
    check_page(alice, "signin")
    sign_up(carol, base, name="Carol", email=f"carol-{tag}@example.com", password=PASSWORD)
    sign_up(alice, base, name="Alice", email=f"alice-{tag}@example.com", password=PASSWORD)

    # a group, a guest and a member
    fill(alice, "f-name", "Lisbon trip")
    fill(alice, "f-currency", "USD")
    submit(alice, "Create group")
    gid = group_id(alice)
    fill(alice, "f-name_name", "Bob")
    submit(alice, "Add guest")
    fill(alice, "f-email_email", f"carol-{tag}@example.com")
    submit(alice, "Add member")
    assert "Member added." in text(alice)
    alice.get(f"{base}/")
    check_page(alice, "home")

    # equal split, with the live preview computed by the server while typing
    new_expense(alice, base, gid, "Dinner", "90.00")
    wait_for(lambda: "owes $30.00" in by_id(alice, "preview").text, "the live preview of an equal split")
    check_page(alice, "expense-form")
    submit(alice, "Save expense")
    assert "Expense saved." in text(alice)

    # a refused input: the message next to the field, nothing saved
    before = expense_count(clean_db, gid)
    new_expense(alice, base, gid, "Lunch", "12,50")
    submit(alice, "Save expense")
    error = by_id(alice, "f-amount-error").text
    assert "decimal string" in error, error
    assert by_id(alice, "f-amount").get_attribute("aria-invalid") == "true"
    assert "f-amount-error" in str(by_id(alice, "f-amount").get_attribute("aria-describedby"))
    assert expense_count(clean_db, gid) == before

    # percentage, paid by Carol
    new_expense(alice, base, gid, "Hotel", "200.00")
    choose(alice, "f-paid_by", "Carol")
    choose(alice, "f-split_type", "By percentage")
    set_row(alice, "Alice", pct="50")
    set_row(alice, "Bob", pct="25")
    set_row(alice, "Carol", pct="25")
    wait_for(lambda: "owes $50.00" in by_id(alice, "preview").text, "the percentage preview")
    submit(alice, "Save expense")

    # exact amounts, Alice not sharing; submitted twice at once (a double click): one expense
    new_expense(alice, base, gid, "Taxi", "30.00")
    choose(alice, "f-split_type", "By exact amounts")
    set_row(alice, "Alice", included=False)
    set_row(alice, "Bob", amt="10.00")
    set_row(alice, "Carol", amt="20.00")
    before = expense_count(clean_db, gid)
    # both requests of a double click reach the server, at once (the browser would show the second's answer)
    statuses = alice.execute_async_script(
        "const done = arguments[arguments.length - 1], f = document.getElementById('expense-form');"
        "const post = () => { const d = new FormData(f); d.set('action', 'save');"
        "  return fetch(f.getAttribute('action'), {method: 'POST', body: new URLSearchParams(d), redirect: 'manual'}); };"
        "Promise.all([post(), post()]).then(rs => done(rs.map(r => r.type + ' ' + r.status)), e => done(String(e)));"
    )
    assert statuses == ["opaqueredirect 0", "opaqueredirect 0"], statuses  # both answered 303: saved, then replayed
    assert expense_count(clean_db, gid) == before + 1
    alice.get(f"{base}/groups/{gid}")

    # shares, with two payers
    new_expense(alice, base, gid, "Groceries", "60.00")
    choose(alice, "f-split_type", "By shares")
    by_id(alice, "f-payers").find_element("css selector", "input[value=several]").click()
    set_row(alice, "Alice", shr="1", paid="40.00")
    set_row(alice, "Bob", shr="2", paid="20.00")
    set_row(alice, "Carol", shr="3")
    wait_for(lambda: "owes $30.00" in by_id(alice, "preview").text, "the shares preview")
    submit(alice, "Save expense")

    # a foreign currency with its rate: 50 EUR at 1.1 USD
    new_expense(alice, base, gid, "Museum", "50")
    fill(alice, "f-currency", "EUR")
    fill(alice, "f-exchange_rate", "1.1")
    wait_for(lambda: "$55.00" in by_id(alice, "preview").text, "the converted preview")
    submit(alice, "Save expense")
    assert "Expense saved." in text(alice)
    check_page(alice, "group")
    dark(alice)
    check_page(alice, "group-dark")  # the dark colours pass axe's contrast checks too
    dark(alice, on=False)

    recurring_rule(alice, base, gid, clean_db)

    # an edit conflict in two sessions: Carol saves first, Alice is told and shown the newer version
    dinner = next(a for a in css_all(alice, "ul.expenses a.desc") if a.text == "Dinner").get_attribute("href")
    alice.get(f"{dinner}/edit")
    carol.get(f"{dinner}/edit")
    fill(carol, "f-amount", "99.00")
    submit(carol, "Save changes")
    assert "Changes saved." in text(carol)
    fill(alice, "f-description", "Dinner at the harbour")
    submit(alice, "Save changes")
    summary = by_id(alice, "error-summary").text
    assert "Carol changed this expense while you were editing it" in summary, summary
    assert by_id(alice, "f-amount").get_attribute("value") == "99.00"
    assert by_id(alice, "f-description").get_attribute("value") == "Dinner"
    check_page(alice, "edit-conflict")
    fill(alice, "f-description", "Dinner at the harbour")
    submit(alice, "Save changes")
    assert "Changes saved." in text(alice)
    assert "Version 3" in text(alice) and "Version 1" in text(alice)
    check_page(alice, "expense")

    # void the taxi
    alice.get(f"{base}/groups/{gid}")
    alice.get(next(a for a in css_all(alice, "ul.expenses a.desc") if a.text == "Taxi").get_attribute("href"))
    submit(alice, "Void this expense")
    assert "Expense voided" in text(alice)

    # settle up: a payment recorded and voided, then every suggestion recorded with one click
    alice.get(f"{base}/groups/{gid}/settle")
    check_page(alice, "settle")
    css(alice, "ul.suggestions button").click()
    wait_for(lambda: "Payment recorded." in text(alice), "the recorded payment")
    css(alice, "ul.payments button.danger").click()
    wait_for(lambda: "Payment voided." in text(alice), "the voided payment")
    for _ in range(5):
        buttons = css_all(alice, "#balances ul.suggestions button")
        if not buttons:
            break
        buttons[0].click()
        wait_for(lambda: "Payment recorded." in text(alice), "a recorded suggestion")
    assert "Everyone is settled up." in text(alice)
    assert "You are settled up" in by_id(alice, "my-balance").text
    nets = run_sql(clean_db, "SELECT net_minor FROM member_balances WHERE group_id = $1", uuid.UUID(gid))
    assert [r["net_minor"] for r in nets] == [0, 0, 0]
    check_page(alice, "group-settled")

    alice.get(f"{base}/groups/{gid}/activity")
    assert "Carol edited an expense" in text(alice) and "You voided a payment" in text(alice)
    check_page(alice, "activity")

    export_and_import_back(alice, base, gid, clean_db, tmp_path)
    assert_ledger_invariants(clean_db)
