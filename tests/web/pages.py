"""What a person does in the browser, as small helpers for the browser tests (Selenium, real Chromium)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

Driver = Any
TIMEOUT_S = 15.0


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # a stale element while the page changes: look again
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


def by_id(d: Driver, element_id: str) -> Any:
    return d.find_element("id", element_id)


def css(d: Driver, selector: str) -> Any:
    return d.find_element("css selector", selector)


def css_all(d: Driver, selector: str) -> list[Any]:
    return list(d.find_elements("css selector", selector))


def fill(d: Driver, element_id: str, value: str) -> None:
    element = by_id(d, element_id)
    element.clear()
    if value:
        element.send_keys(value)


def choose(d: Driver, element_id: str, text: str) -> None:
    from selenium.webdriver.support.ui import Select

    select = Select(by_id(d, element_id))
    for option in select.options:
        if option.text.startswith(text):
            select.select_by_visible_text(option.text)
            return
    raise AssertionError(f"no option starting with {text!r} in #{element_id}")


def submit(d: Driver, button_text: str) -> None:
    """Click the button with this text and wait for the next page."""
    old = css(d, "html")
    button = next(b for b in css_all(d, "button") if b.text.strip() == button_text and b.is_displayed())
    button.click()
    wait_for(lambda: _stale(old), f"the page after {button_text!r}")
    wait_for(lambda: d.execute_script("return document.readyState") == "complete", "the page to load")


def follow(d: Driver, link_text: str) -> None:
    """Click the link with this text and wait for the next page."""
    old = css(d, "html")
    link = next(a for a in css_all(d, "a") if a.text.strip() == link_text and a.is_displayed())
    link.click()
    wait_for(lambda: _stale(old), f"the page after the link {link_text!r}")
    wait_for(lambda: d.execute_script("return document.readyState") == "complete", "the page to load")


def _stale(element: Any) -> bool:
    try:
        element.tag_name  # noqa: B018
    except Exception:
        return True
    return False


def text(d: Driver) -> str:
    return str(css(d, "main").text)


def sign_up(d: Driver, base: str, *, name: str, email: str, password: str) -> None:
    d.get(base + "/signup")
    fill(d, "f-name", name)
    fill(d, "f-email", email)
    fill(d, "f-password", password)
    submit(d, "Create account")
    assert "Your groups" in text(d), text(d)


def member_id(d: Driver, name: str) -> str:
    """A member's user id, from the expense form's row for them."""
    for fieldset in css_all(d, "fieldset.member"):
        if fieldset.find_element("css selector", "legend").text.split(" (you)")[0] == name:
            box = fieldset.find_element("css selector", "input[type=checkbox]")
            return str(box.get_attribute("name")).removeprefix("inc_")
    raise AssertionError(f"no row for {name}")


def set_row(d: Driver, name: str, *, included: bool = True, **columns: str) -> None:
    """In the expense form: tick (or not) a person, and fill their pct/amt/shr/paid boxes."""
    uid = member_id(d, name)
    box = by_id(d, f"f-inc_{uid}")
    if box.is_selected() != included:
        box.click()
    for column, value in columns.items():
        fill(d, f"f-{column}_{uid}", value)


def group_id(d: Driver) -> str:
    match = re.search(r"/groups/([0-9a-f-]{36})", d.current_url)
    assert match, d.current_url
    return match.group(1)
