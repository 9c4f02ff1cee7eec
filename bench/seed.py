"""Data created over HTTP before the load: users and groups, and the debts the settlements pay back."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from bench import log
from bench.model import Fixture, Group, Member, Pair, Placement

CONCURRENCY = 16
OK = (200, 201)
DEBT_MINOR = 100_00  # a suggested payment smaller than 100.00 is not used for settlements


class _Client:
    """An httpx client limited to CONCURRENCY requests at a time, failing on any non-2xx answer."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.sem = asyncio.Semaphore(CONCURRENCY)

    async def call(
        self, method: str, path: str, *, token: str | None = None, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.sem:
            r = await self.client.request(method, path, json=body, headers=headers)
        if r.status_code not in OK:
            raise RuntimeError(f"{method} {path} -> {r.status_code} {r.text[:300]}")
        data: dict[str, Any] = r.json()
        return data


async def _group(c: _Client, name: str, members: int) -> Group:
    """`members` new users; the first creates the group and adds the others."""
    users = await asyncio.gather(
        *(
            c.call("POST", "/v1/users", body={"name": f"{name} {i}", "email": f"{name}-{i}@bench.example"})
            for i in range(members)
        )
    )
    ms: list[Member] = [{"id": u["id"], "token": u["api_token"]} for u in users]
    owner = ms[0]["token"]
    g = await c.call("POST", "/v1/groups", token=owner, body={"name": name, "currency": "USD"})
    for m in ms[1:]:
        await c.call("POST", f"/v1/groups/{g['id']}/members", token=owner, body={"user_id": m["id"]})
    return {"id": g["id"], "members": ms}


async def _seed(base: str, names: list[str], members: int) -> list[Group]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        c = _Client(client)
        return list(await asyncio.gather(*(_group(c, n, members) for n in names)))


def seed_groups(base: str, names: list[str], members: int) -> list[Group]:
    """Each named group gets `members` new users; the first creates the group and adds the others."""
    return asyncio.run(_seed(base, names, members))


def seed_fixture(base: str, groups: int, members: int) -> Fixture:
    log(f"seeding {groups} groups x {members} members + 1 hot group over HTTP")
    *spread, hot = seed_groups(base, [*(f"spread-{i:03d}" for i in range(groups)), "hot"], members)
    return Fixture(spread=spread, hot=hot)


async def _debts_of(c: _Client, g: Group) -> list[Pair]:
    ms = g["members"]
    tokens = {m["id"]: m["token"] for m in ms}
    body = {
        "description": "bench debt",
        "amount": "30000.00",
        "paid_by": ms[0]["id"],
        "split_type": "equal",
        "participants": [{"user_id": m["id"]} for m in ms[1:]],
    }
    await c.call("POST", f"/v1/groups/{g['id']}/expenses", token=ms[0]["token"], body=body)
    balances = await c.call("GET", f"/v1/groups/{g['id']}/balances", token=ms[0]["token"])
    pairs: list[Pair] = []
    for p in balances["suggested_payments"]:
        minor = int(p["amount"].replace(".", ""))
        if minor >= DEBT_MINOR:
            pair: Pair = {
                "group": g["id"],
                "from": p["from_user_id"],
                "to": p["to_user_id"],
                "token": tokens[p["from_user_id"]],
                "capacity_minor": minor,
            }
            pairs.append(pair)
    return pairs


async def _seed_debts(base: str, groups: list[Group]) -> list[Pair]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        c = _Client(client)
        return [p for ps in await asyncio.gather(*(_debts_of(c, g) for g in groups)) for p in ps]


def debt_pairs(base: str, fixture: Fixture) -> dict[Placement, list[Pair]]:
    """A large expense per group, then settle-able (debtor, creditor) pairs from the suggested payments.

    Settling 0.01 at a time along the suggested payments never exceeds what either side owes or is
    owed, as long as each pair stays under its suggested amount (checked after the run)."""
    log("seeding debts for settlements")
    all_pairs = asyncio.run(_seed_debts(base, [*fixture.spread, fixture.hot]))
    return {
        "spread": [p for p in all_pairs if p["group"] != fixture.hot["id"]],
        "hot": [p for p in all_pairs if p["group"] == fixture.hot["id"]],
    }
