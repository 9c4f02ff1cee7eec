"""Build a group over HTTP from a hypothesis-drawn sequence of every kind of write: members and guests,
expenses of every split with one or two payers and in a foreign currency, edits, voids, settlements,
settlement voids and member removals. Used by the export and round-trip tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from tests.api import Api, Who

FOREIGN = {"EUR": ("1.0850", 2), "JPY": ("0.0067", 0)}  # rate to USD, decimals
_names = itertools.count()


def money(minor: int, decimals: int) -> str:
    whole, frac = divmod(minor, 10**decimals)
    return f"{whole}.{frac:0{decimals}d}" if decimals else str(whole)


@dataclass
class Built:
    api: Api
    owner: Who
    gid: str
    members: list[Who]  # current members (guests have no token)
    names: dict[str, str] = field(default_factory=dict)  # user id → name
    expenses: list[str] = field(default_factory=list)  # ids, voided included
    voided: set[str] = field(default_factory=set)
    settlements: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return self.owner.headers

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.api.client.post(f"/v1/groups/{self.gid}{path}", json=body, headers=self.headers)


def start(api: Api, *, members: int = 1, guests: int = 1) -> Built:
    tag = next(_names)
    owner = api.user(f"Owner{tag}")
    people = [api.user(f"Member{tag}x{i}") for i in range(members)]
    gid = api.group(owner, members=tuple(people))
    built = Built(api=api, owner=owner, gid=gid, members=[owner, *people])
    for m in built.members:
        built.names[m.id] = api.client.get("/v1/users/me", headers=m.headers).json()["name"]
    for _ in range(guests):
        add_guest(built)
    return built


def add_guest(built: Built, name: str | None = None) -> Who:
    name = name or f"Guest{next(_names)}"
    r = built.post("/members", {"name": name})
    assert r.status_code == 201, r.text
    guest = next(m for m in r.json()["members"] if m["name"] == name and m["user_id"] not in built.names)
    who = Who(guest["user_id"], "", "")
    built.members.append(who)
    built.names[who.id] = name
    return who


def _split(data: st.DataObject, split: str, amount: int, *, decimals: int, people: list[Who]) -> list[dict[str, Any]]:
    if split == "equal":
        return [{"user_id": p.id} for p in people]
    if split == "shares":
        return [{"user_id": p.id, "shares": data.draw(st.integers(1, 5))} for p in people]
    cuts = sorted(data.draw(st.lists(st.integers(0, 10_000), min_size=len(people) - 1, max_size=len(people) - 1)))
    edges = [0, *cuts, 10_000]
    weights = [b - a for a, b in itertools.pairwise(edges)]
    if split == "percentage":
        if 0 in weights:
            weights = [1] * len(people)
            weights[0] = 10_000 - (len(people) - 1)
        return [{"user_id": p.id, "percentage": money(w, 2)} for p, w in zip(people, weights)]
    parts = [amount * w // 10_000 for w in weights]
    parts[0] += amount - sum(parts)
    return [{"user_id": p.id, "amount": money(a, decimals)} for p, a in zip(people, parts)]


def expense_body(data: st.DataObject, built: Built) -> dict[str, Any]:
    currency = data.draw(st.sampled_from(["USD", "USD", "EUR", "JPY"]))
    rate, decimals = FOREIGN.get(currency, (None, 2))
    amount = data.draw(st.integers(10 if decimals else 1, 5_000_000 if decimals else 50_000))
    people = data.draw(st.lists(st.sampled_from(built.members), min_size=1, max_size=4, unique_by=lambda w: w.id))
    split = data.draw(st.sampled_from(["equal", "percentage", "exact", "shares"]))
    body: dict[str, Any] = {
        "description": data.draw(st.sampled_from(["Dinner", "=SUM(A1)", "Taxi, airport", "Rent \"May\""])),
        "amount": money(amount, decimals),
        "split_type": split,
        "participants": _split(data, split, amount, decimals=decimals, people=people),
        "date": data.draw(st.sampled_from(["2026-01-31", "2026-02-01", "2025-12-24"])),
        "category": data.draw(st.sampled_from([None, "food", "travel"])),
        "notes": data.draw(st.sampled_from([None, "", "with \u00e9t\u00e9 notes"])),
    }
    if currency != "USD":
        body |= {"currency": currency, "exchange_rate": rate}
    payers = data.draw(st.lists(st.sampled_from(built.members), min_size=1, max_size=2, unique_by=lambda w: w.id))
    if len(payers) == 1 and data.draw(st.booleans()):
        body["paid_by"] = payers[0].id
    else:
        first = data.draw(st.integers(1, amount)) if len(payers) == 2 and amount > 1 else amount
        amounts = [first, amount - first] if len(payers) == 2 and amount > first else [amount]
        body["payers"] = [{"user_id": p.id, "amount": money(a, decimals)} for p, a in zip(payers, amounts)]
    return {k: v for k, v in body.items() if v is not None}


def _nets(built: Built) -> dict[str, int]:
    got = built.api.client.get(f"/v1/groups/{built.gid}/balances", headers=built.headers).json()["balances"]
    return {b["user_id"]: int(b["net"].replace(".", "")) for b in got}


def step(data: st.DataObject, built: Built) -> None:
    """One drawn write (skipped when the group's state does not allow it)."""
    kind = data.draw(st.sampled_from(["expense", "expense", "expense", "edit", "void", "settle", "settle",
                                      "void-settlement", "guest", "remove"]))  # fmt: skip
    live = [e for e in built.expenses if e not in built.voided]
    if kind == "expense" or (kind in ("edit", "void") and not live):
        r = built.post("/expenses", expense_body(data, built))
        assert r.status_code == 201, r.text
        built.expenses.append(r.json()["id"])
    elif kind in ("edit", "void"):
        target = data.draw(st.sampled_from(live))
        path = f"/v1/groups/{built.gid}/expenses/{target}"
        if kind == "edit":
            r = built.api.client.put(path, json=expense_body(data, built), headers=built.headers)
        else:
            r = built.api.client.delete(path, headers=built.headers)
            if r.status_code == 200:
                built.voided.add(target)
        assert r.status_code in (200, 409), r.text  # 409: someone in it has left
    elif kind == "settle":
        nets = _nets(built)
        debtors, creditors = [u for u, n in nets.items() if n < 0], [u for u, n in nets.items() if n > 0]
        if debtors and creditors:
            frm, to = data.draw(st.sampled_from(debtors)), data.draw(st.sampled_from(creditors))
            top = min(-nets[frm], nets[to])
            r = built.post("/settlements", {"from_user_id": frm, "to_user_id": to, "amount": money(
                data.draw(st.integers(1, top)), 2), "note": data.draw(st.sampled_from([None, "cash"]))})  # fmt: skip
            assert r.status_code == 201, r.text
            built.settlements.append(r.json()["id"])
    elif kind == "void-settlement" and built.settlements:
        target = data.draw(st.sampled_from(built.settlements))
        r = built.api.client.delete(f"/v1/groups/{built.gid}/settlements/{target}", headers=built.headers)
        assert r.status_code in (200, 409), r.text
    elif kind == "guest":
        add_guest(built)
    elif kind == "remove" and len(built.members) > 2:
        leave(built, data.draw(st.sampled_from(built.members[1:])))
    built.log.append(kind)


def _settle(built: Built, frm: str, to: str, *, amount: int) -> None:
    r = built.post("/settlements", {"from_user_id": frm, "to_user_id": to, "amount": money(amount, 2)})
    assert r.status_code == 201, r.text
    built.settlements.append(r.json()["id"])


def leave(built: Built, who: Who) -> None:
    """Settle who's net to zero with the others, then remove them: a former member with a history."""
    nets = _nets(built)
    while nets[who.id]:
        if nets[who.id] < 0:
            other = max((u for u in nets if u != who.id), key=lambda u: nets[u])
            frm, to, amount = who.id, other, min(-nets[who.id], nets[other])
        else:
            other = min((u for u in nets if u != who.id), key=lambda u: nets[u])
            frm, to, amount = other, who.id, min(nets[who.id], -nets[other])
        _settle(built, frm, to, amount=amount)
        nets[frm] += amount
        nets[to] -= amount
    r = built.api.client.delete(f"/v1/groups/{built.gid}/members/{who.id}", headers=built.headers)
    assert r.status_code == 204, r.text
    built.members.remove(who)


def build(data: st.DataObject, api: Api, *, steps: int) -> Built:
    built = start(api, members=data.draw(st.integers(0, 2)), guests=data.draw(st.integers(0, 2)))
    for _ in range(steps):
        step(data, built)
    return built
