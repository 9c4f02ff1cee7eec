"""The web session and its guards: cookie attributes, CSRF refusals (nothing written), sign-out revoking the
token, the sign-in limits of the API, the claim flow as pages, a stale edit, locales, and the places kept
for export, import and recurring expenses."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from tests.dbutil import counts
from tests.web.test_web_forms import expense, trip
from tests.web.webclient import PASSWORD, Person, idem_of


def cookie_line(r: object, name: str) -> str:
    lines = [c for c in r.headers.get_list("set-cookie") if c.startswith(name + "=")]  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    return lines[0]


def test_session_cookie_attributes(client: TestClient, clean_db: URL) -> None:
    p = Person(client, "Cookie")
    first = p.get("/signup")
    csrf = cookie_line(first, "quits_csrf")
    assert "HttpOnly" in csrf and "SameSite=lax" in csrf and "Path=/" in csrf and "Secure" not in csrf
    r = p.post("/signup", {"name": "C", "email": p.email, "password": PASSWORD})
    session = cookie_line(r, "quits_session")
    assert "HttpOnly" in session and "SameSite=lax" in session and "Path=/" in session
    assert "Secure" not in session and "Max-Age" not in session and "expires" not in session.lower()
    assert cookie_line(r, "quits_csrf") != csrf  # a new CSRF key at sign-in
    over_https = Person(client, "Https")
    r = over_https.get("https://testserver/signup")
    assert "Secure" in cookie_line(r, "quits_csrf")
    r = over_https.post("https://testserver/signup", {"name": "H", "email": over_https.email, "password": PASSWORD})
    assert r.status_code == 303 and "Secure" in cookie_line(r, "quits_session")
    page = p.get("/")
    for header in ("content-security-policy", "x-content-type-options", "server-timing"):
        assert header in page.headers
    assert page.headers["cache-control"] == "no-store"


def test_csrf_refusals_write_nothing(client: TestClient, clean_db: URL) -> None:
    ann = Person(client, "Ann").sign_up()
    ann.get("/")
    good = ann.csrf
    refusals = [
        ({"name": "G", "currency": "USD"}, {}),  # no csrf field
        ({"csrf": ("y" if good[0] == "x" else "x") + good[1:], "name": "G", "currency": "USD"}, {}),  # a wrong value
        # (its first character changed: "x" + good[1:] was the good value itself when good began with "x")
        ({"csrf": good, "name": "G", "currency": "USD"}, {"Origin": "https://evil.example"}),
        ({"csrf": good, "name": "G", "currency": "USD"}, {"Sec-Fetch-Site": "cross-site"}),
        ({"csrf": good, "name": "G", "currency": "USD"}, {"Origin": "null"}),
    ]
    for data, headers in refusals:
        r = ann.post("/groups", data, csrf=False, headers=headers)
        assert r.status_code == 403, (data, headers, r.status_code)
        assert "expired or was sent from another site" in r.text
    assert counts(clean_db, ("groups",))["groups"] == 0
    # another browser's value (its own CSRF cookie) is refused too
    other = Person(client, "Other").sign_up()
    other.get("/")
    assert ann.post("/groups", {"csrf": other.csrf, "name": "G", "currency": "USD"}, csrf=False).status_code == 403
    # the value is bound to the session too: Ann's CSRF cookie and value with another session are refused
    mixed = Person(client, "Mixed")
    mixed.jar.set("quits_csrf", ann.jar.get("quits_csrf") or "")
    mixed.jar.set("quits_session", other.jar.get("quits_session") or "")
    assert mixed.post("/groups", {"csrf": good, "name": "G", "currency": "USD"}, csrf=False).status_code == 403
    # a value from before signing in is worthless after it
    late = Person(client, "Late")
    late.get("/signup")
    stale = late.csrf
    late.post("/signup", {"name": "L", "email": late.email, "password": PASSWORD})
    assert late.post("/groups", {"csrf": stale, "name": "G", "currency": "USD"}, csrf=False).status_code == 403
    assert counts(clean_db, ("groups",))["groups"] == 0
    r = ann.post("/groups", {"csrf": good, "name": "G", "currency": "USD"}, csrf=False,
                 headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"})  # fmt: skip
    assert r.status_code == 303


def test_sign_out_revokes_the_session(client: TestClient, clean_db: URL) -> None:
    ann = Person(client, "Ann").sign_up()
    stolen = dict(ann.jar.items())
    assert ann.get("/").text.count("Sign out") == 1
    r = ann.post("/signout", {})
    assert r.status_code == 303 and r.headers["location"].startswith("/signin")
    assert 'quits_session=""' in cookie_line(r, "quits_session") or "Max-Age=0" in cookie_line(r, "quits_session")
    thief = Person(client, "Thief")
    for name, value in stolen.items():
        thief.jar.set(name, value)
    client.app.state.token_cache._items.clear()  # type: ignore[attr-defined]  # other workers: within 1 s
    r = thief.get("/groups/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 303 and r.headers["location"].startswith("/signin?next=")


def test_sign_in_is_limited_like_the_api(client: TestClient, clean_db: URL) -> None:
    ann = Person(client, "Ann").sign_up()
    p = Person(client, "Guesser")
    p.get("/signin")
    limit = client.app.state.settings.login_max_failures_per_account  # type: ignore[attr-defined]
    statuses = [p.post("/signin", {"email": ann.email, "password": "wrong password!"}).status_code
                for _ in range(limit + 1)]  # fmt: skip
    assert statuses[:limit] == [401] * limit and statuses[-1] == 429
    r = p.post("/signin", {"email": ann.email, "password": PASSWORD})
    assert r.status_code == 429 and "Too many failed attempts" in r.text and "Retry-After" in r.headers
    fresh = Person(client, "Fresh").sign_up()
    q = Person(client, "Q")
    q.get("/signin")
    r = q.post("/signin", {"email": fresh.email, "password": PASSWORD, "next": "/groups/x"})
    assert r.status_code == 303, r.text[-3000:]
    assert r.headers["location"] == "/groups/x"
    q.get("/signin")
    r = q.post("/signin", {"email": fresh.email, "password": PASSWORD, "next": "//evil.example/"})
    assert r.headers["location"] == "/"


def test_invite_and_claim_pages(client: TestClient, clean_db: URL) -> None:
    ann = Person(client, "Ann").sign_up()
    gid, ids = trip(ann)
    assert ann.post(f"/groups/{gid}/expenses", expense(ids)).status_code == 303
    ann.get(f"/groups/{gid}")
    r = ann.post(f"/groups/{gid}/members/{ids['bob']}/invite", {})
    assert r.status_code == 200
    link = re.search(r'id="invite-link" type="text" value="([^"]+)"', r.text)
    assert link and "/claim?code=qi_" in link.group(1)
    bob = Person(client, "Bobby")
    page = bob.get(link.group(1).replace("http://testserver", ""))
    code = re.search(r'name="invite_code" type="text" value="([^"]+)"', page.text)
    assert code
    r = bob.post("/claim", {"invite_code": code.group(1), "email": bob.email, "name": "", "password": PASSWORD})
    assert r.status_code == 303
    home = bob.get("/").text
    assert "Trip" in home and "You owe $15.00" in home  # the guest's place, balance and all


def test_stale_edit_shows_the_newer_version(client: TestClient, clean_db: URL) -> None:
    ann = Person(client, "Ann").sign_up()
    gid, ids = trip(ann)
    location = ann.post(f"/groups/{gid}/expenses", expense(ids)).headers["location"]
    eid = re.search(r"id=([0-9a-f-]{36})", location).group(1)  # type: ignore[union-attr]
    form = ann.get(f"/groups/{gid}/expenses/{eid}/edit").text
    stale_key, stale_tag = idem_of(form), '"1"'
    r = ann.post(f"/groups/{gid}/expenses/{eid}", expense(ids, amount="40.00", if_match=stale_tag, idem="web-a"))
    assert r.status_code == 303
    before = counts(clean_db, ("ledger_entries", "expense_versions"))
    r = ann.post(f"/groups/{gid}/expenses/{eid}", expense(ids, amount="50.00", if_match=stale_tag, idem=stale_key))
    assert r.status_code == 409
    assert "changed this expense while you were editing it" in r.text and 'value="40.00"' in r.text
    assert 'name="if_match" value="&#34;2&#34;"' in r.text
    assert counts(clean_db, ("ledger_entries", "expense_versions")) == before
    r = ann.post(f"/groups/{gid}/expenses/{eid}/void", {"if_match": '"1"', "idem": "web-v"})
    assert r.status_code == 409 and "was not voided" in r.text
    assert counts(clean_db, ("ledger_entries", "expense_versions")) == before


@pytest.mark.parametrize(
    ("accept", "currency", "amount", "shown"),
    [("en-US,en;q=0.9", "USD", "1234.50", "$1,234.50"), ("de-DE,de;q=0.9", "EUR", "1234.50", "1.234,50\xa0€"),
     ("en-US", "JPY", "1235", "¥1,235"), ("xx-invalid;q=1, *", "USD", "1234.50", "$1,234.50")],
)  # fmt: skip
def test_amounts_in_the_persons_locale(client: TestClient, clean_db: URL, accept: str, currency: str,
                                       amount: str, shown: str) -> None:  # fmt: skip
    ann = Person(client, "Ann").sign_up()
    gid = ann.group(currency=currency)
    bob = ann.add_guest(gid, "Bob")
    page = ann.get(f"/groups/{gid}/expenses/new").text
    ids = {"ann": re.search(r'name="inc_([0-9a-f-]{36})"', page).group(1), "bob": bob}  # type: ignore[union-attr]
    data = expense(ids, amount=amount, currency=currency, rows={"ann": {}, "bob": {"inc": "on"}})
    assert ann.post(f"/groups/{gid}/expenses", data).status_code == 303
    assert shown in ann.get(f"/groups/{gid}", headers={"Accept-Language": accept}).text
