"""The core flows with JavaScript switched off in Chromium: add an expense (with the server's preview
button) and settle up with one click. Plus the invite link page and its claim, with JavaScript on."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import URL

from tests.concurrency.helpers import Server
from tests.dbutil import run_sql
from tests.web.conftest import axe_violations, screenshot
from tests.web.pages import by_id, choose, css, fill, group_id, set_row, sign_up, submit, text, wait_for

PASSWORD = "a long trip password"


def test_add_an_expense_and_settle_up_without_javascript(
    web_server: Server, clean_db: URL, browsers: Callable[..., Any]
) -> None:
    base = web_server.base_url
    d = browsers(javascript=False)
    sign_up(d, base, name="Nojs", email=f"nojs-{uuid.uuid4().hex[:6]}@example.com", password=PASSWORD)
    fill(d, "f-name", "No script")
    fill(d, "f-currency", "EUR")
    submit(d, "Create group")
    gid = group_id(d)
    fill(d, "f-name_name", "Guest")
    submit(d, "Add guest")
    d.get(f"{base}/groups/{gid}/expenses/new")
    assert by_id(d, "f-pct_" + css(d, "fieldset.member input[type=checkbox]").get_attribute("name")[4:]).is_displayed()
    fill(d, "f-description", "Train")
    fill(d, "f-amount", "40.00")
    choose(d, "f-split_type", "By shares")
    set_row(d, "Nojs", shr="1")
    set_row(d, "Guest", shr="3")
    submit(d, "Preview the split")
    assert "owes €30.00" in by_id(d, "preview").text
    submit(d, "Save expense")
    assert "Expense saved." in text(d)
    screenshot(d, "group-no-js")  # (axe runs on these templates in the other tests: it needs JavaScript)
    submit(d, "Record payment")
    assert "Payment recorded." in text(d) and "Everyone is settled up." in text(d)
    nets = run_sql(clean_db, "SELECT net_minor FROM member_balances WHERE group_id = $1", uuid.UUID(gid))
    assert [r["net_minor"] for r in nets] == [0, 0]

    # a recurring expense, its preview by the button, skipped and stopped: forms and buttons only
    d.get(f"{base}/groups/{gid}/recurring/new")
    fill(d, "f-description", "Gym")
    fill(d, "f-amount", "50.00")
    fill(d, "f-interval", "2")
    choose(d, "f-every", "Weeks")
    by_id(d, "f-start_date").send_keys("01062031")  # typed as the en-US date field shows it
    fill(d, "f-count", "4")
    submit(d, "Preview the split")
    assert "owes €25.00" in by_id(d, "preview").text
    submit(d, "Save recurring expense")
    assert "Recurring expense saved." in text(d) and "Every 2 weeks from Jan 6, 2031" in text(d), text(d)
    submit(d, "Skip next")
    assert "Next: Jan 20, 2031" in text(d) and "4 times, 3 left" in text(d), text(d)
    submit(d, "Stop")
    assert "Recurring expense stopped." in text(d)


def test_invite_link_and_claim(web_server: Server, clean_db: URL, browsers: Callable[..., Any]) -> None:
    base = web_server.base_url
    ann, guest = browsers(), browsers()
    sign_up(ann, base, name="Ann", email=f"ann-{uuid.uuid4().hex[:6]}@example.com", password=PASSWORD)
    fill(ann, "f-name", "Flat")
    submit(ann, "Create group")
    fill(ann, "f-name_name", "Dee")
    submit(ann, "Add guest")
    submit(ann, "Invite link")
    link = by_id(ann, "invite-link").get_attribute("value")
    css(ann, "button[data-copy]").click()
    wait_for(lambda: by_id(ann, "copy-status").text == "Copied.", "the copied link")
    assert axe_violations(ann) == []
    screenshot(ann, "invite")
    guest.get(link)
    fill(guest, "f-email", f"dee-{uuid.uuid4().hex[:6]}@example.com")
    fill(guest, "f-password", PASSWORD)
    assert axe_violations(guest) == []
    submit(guest, "Join")
    assert "Flat" in text(guest)
