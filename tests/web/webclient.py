"""A person using the web app through the in-process TestClient: their own cookies, the CSRF value of the
last page they saw, and the forms they post."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import httpx
from fastapi.testclient import TestClient

PASSWORD = "a long test password"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Person:
    def __init__(self, client: TestClient, name: str = "Ann") -> None:
        self.client = client
        self.jar = httpx.Cookies()
        self.name = name
        self.email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
        self.csrf = ""

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        self.client.cookies = self.jar
        kwargs.setdefault("follow_redirects", False)
        r = self.client.request(method, url, **kwargs)
        self.jar = httpx.Cookies(self.client.cookies)
        self.client.cookies = httpx.Cookies()
        found = _CSRF.search(r.text) if r.headers.get("content-type", "").startswith("text/html") else None
        if found:
            self.csrf = found.group(1)
        return r

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, data: dict[str, Any], *, csrf: bool = True, **kwargs: Any) -> httpx.Response:
        if csrf and "csrf" not in data:
            data = {"csrf": self.csrf, **data}
        return self.request("POST", url, data=data, **kwargs)

    def sign_up(self) -> Person:
        self.get("/signup")
        r = self.post("/signup", {"name": self.name, "email": self.email, "password": PASSWORD})
        assert r.status_code == 303, r.text
        self.get("/")
        return self

    def group(self, name: str = "Trip", currency: str = "USD") -> str:
        self.get("/")
        r = self.post("/groups", {"name": name, "currency": currency})
        assert r.status_code == 303, r.text
        gid = r.headers["location"].split("/")[2].split("?")[0]
        self.get(f"/groups/{gid}")
        return gid

    def add_guest(self, gid: str, name: str) -> str:
        self.get(f"/groups/{gid}")
        r = self.post(f"/groups/{gid}/members", {"kind": "name", "name": name})
        assert r.status_code == 303, r.text
        page = self.get(f"/groups/{gid}/expenses/new").text
        return member_id(page, name)


def member_id(page: str, name: str) -> str:
    match = re.search(r"<legend>" + re.escape(name) + r"(?: \(you\))?</legend>\s*<label class=\"check\"><input type=\"checkbox\" "
                      r"name=\"inc_([0-9a-f-]{36})\"", page)  # fmt: skip
    assert match, f"no row for {name}"
    return match.group(1)


def field_error(page: str, field: str) -> str | None:
    match = re.search(rf'<p class="error" id="f-{re.escape(field)}-error">(.*?)</p>', page, re.S)
    return html.unescape(match.group(1)) if match else None


def idem_of(page: str) -> str:
    match = re.search(r'name="idem" value="([^"]+)"', page)
    assert match
    return match.group(1)
