"""A thin client for tests: create users, groups, expenses and read balances over HTTP."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

_seq = itertools.count()


@dataclass(frozen=True)
class Who:
    id: str
    token: str
    email: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def user(self, name: str = "User") -> Who:
        email = f"{name.lower()}-{next(_seq)}-{uuid.uuid4().hex[:8]}@example.com"
        r = self.client.post("/v1/users", json={"name": name, "email": email})
        assert r.status_code == 201, r.text
        body = r.json()
        return Who(body["id"], body["api_token"], email)

    def group(self, owner: Who, currency: str = "USD", members: tuple[Who, ...] = ()) -> str:
        r = self.client.post("/v1/groups", json={"name": "G", "currency": currency}, headers=owner.headers)
        assert r.status_code == 201, r.text
        gid: str = r.json()["id"]
        for m in members:
            r = self.client.post(f"/v1/groups/{gid}/members", json={"user_id": m.id}, headers=owner.headers)
            assert r.status_code == 201, r.text
        return gid

    def expense(
        self,
        who: Who,
        gid: str,
        amount: str,
        paid_by: Who,
        participants: list[dict[str, Any]] | list[Who],
        split_type: str = "equal",
        key: str | None = None,
        expect: int | None = 201,
    ) -> httpx.Response:
        parts = [{"user_id": p.id} if isinstance(p, Who) else p for p in participants]
        body = {
            "description": "x",
            "amount": amount,
            "paid_by": paid_by.id,
            "split_type": split_type,
            "participants": parts,
        }
        headers = dict(who.headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        r = self.client.post(f"/v1/groups/{gid}/expenses", json=body, headers=headers)
        if expect is not None:
            assert r.status_code == expect, r.text
        return r

    def settle(self, who: Who, gid: str, frm: Who, to: Who, amount: str, expect: int | None = 201) -> httpx.Response:
        body = {"from_user_id": frm.id, "to_user_id": to.id, "amount": amount}
        r = self.client.post(f"/v1/groups/{gid}/settlements", json=body, headers=who.headers)
        if expect is not None:
            assert r.status_code == expect, r.text
        return r

    def nets(self, who: Who, gid: str) -> dict[str, str]:
        r = self.client.get(f"/v1/groups/{gid}/balances", headers=who.headers)
        assert r.status_code == 200, r.text
        return {b["user_id"]: b["net"] for b in r.json()["balances"]}


def assert_problem(r: httpx.Response, status: int, type_suffix: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    for field in ("type", "title", "status", "detail"):
        assert field in body, body
    assert body["status"] == status
    if type_suffix is not None:
        assert body["type"].endswith(type_suffix), body
    return body
