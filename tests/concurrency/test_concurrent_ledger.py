"""Balances under real concurrency: conservation, no lost updates, no overdraft, no deadlocks."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.api import Who, assert_problem
from tests.concurrency.helpers import Live, minor, money, settlement_overshoots, storm

WRITERS = 8
OPS_PER_WRITER = 40
READERS = 2


# ---- conservation --------------------------------------------------------------------------------------


@dataclass
class Group:
    id: str
    currency: str
    decimals: int
    members: list[Who]  # users with a token: they write
    guests: list[Who] = field(default_factory=list)  # no token: they only pay, owe and settle

    @property
    def people(self) -> list[Who]:
        return self.members + self.guests


@dataclass
class Acks:
    """What the server acknowledged with 201 (keyed by id: an idempotent replay is not a second write)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    expenses: dict[str, dict[str, Any]] = field(default_factory=dict)
    settlements: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)


def _random_split(rng: random.Random, total: int, ids: list[str], decimals: int) -> tuple[str, list[dict[str, Any]]]:
    split = rng.choice(["equal", "percentage", "exact", "shares"])
    if split == "equal":
        return split, [{"user_id": u} for u in ids]
    if split == "shares":
        return split, [{"user_id": u, "shares": rng.randint(1, 5)} for u in ids]
    if split == "exact":  # random cut points; an exact participant may owe zero
        cuts = sorted(rng.randint(0, total) for _ in ids[1:])
        parts = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
        return split, [{"user_id": u, "amount": money(p, decimals)} for u, p in zip(ids, parts, strict=True)]
    # percentage: whole units of 0.0001 percent, each > 0, summing to exactly 100.0000
    cuts = sorted(rng.sample(range(1, 1_000_000), len(ids) - 1))
    parts = [b - a for a, b in zip([0, *cuts], [*cuts, 1_000_000], strict=True)]
    return split, [
        {"user_id": u, "percentage": f"{p // 10_000}.{p % 10_000:04d}"} for u, p in zip(ids, parts, strict=True)
    ]


def _writer(live: Live, groups: list[Group], acks: Acks, seed: int, barrier: threading.Barrier) -> None:
    rng = random.Random(seed)
    with live.client() as client:
        client.get("/health")
        barrier.wait(timeout=30)
        for _ in range(OPS_PER_WRITER):
            g = rng.choice(groups)
            actor = rng.choice(g.members)
            key = str(uuid.uuid4()) if rng.random() < 0.5 else None
            headers = dict(actor.headers) | ({"Idempotency-Key": key} if key else {})
            if rng.random() < 0.7:
                participants = rng.sample(g.people, rng.randint(1, len(g.people)))
                total = rng.randint(2, 50_000)
                split, parts = _random_split(rng, total, [p.id for p in participants], g.decimals)
                body = {"description": "w", "amount": money(total, g.decimals), "split_type": split,
                        "participants": parts}  # fmt: skip
                if rng.random() < 0.3:  # two payers (contract v2)
                    first, second = rng.sample(g.people, 2)
                    cut = rng.randint(1, total - 1)
                    body["payers"] = [{"user_id": first.id, "amount": money(cut, g.decimals)},
                                      {"user_id": second.id, "amount": money(total - cut, g.decimals)}]  # fmt: skip
                else:
                    body["paid_by"] = rng.choice(g.people).id
                kind, path = "expense", f"/v1/groups/{g.id}/expenses"
            else:
                r = client.get(f"/v1/groups/{g.id}/balances", headers=actor.headers)
                assert r.status_code == 200, r.text
                nets = {b["user_id"]: minor(b["net"], g.decimals) for b in r.json()["balances"]}
                debtors = [u for u, n in nets.items() if n < 0]
                creditors = [u for u, n in nets.items() if n > 0]
                if not debtors:
                    continue
                d, c = rng.choice(debtors), rng.choice(creditors)
                # Usually within the (possibly already stale) limit, sometimes deliberately over it.
                cap = min(-nets[d], nets[c])
                amount = rng.randint(1, cap) if rng.random() < 0.8 else cap + rng.randint(1, 100)
                body = {"from_user_id": d, "to_user_id": c, "amount": money(amount, g.decimals)}
                kind, path = "settlement", f"/v1/groups/{g.id}/settlements"
            r = client.post(path, json=body, headers=headers)
            if key is not None and r.status_code == 201 and rng.random() < 0.3:  # a client retry: must replay
                again = client.post(path, json=body, headers=headers)
                assert again.status_code == 201 and again.content == r.content, again.text
                assert again.headers["idempotent-replayed"] == "true"
            with acks.lock:
                acks.statuses[(kind, r.status_code)] += 1
            if r.status_code == 201:
                with acks.lock:
                    (acks.expenses if kind == "expense" else acks.settlements)[r.json()["id"]] = r.json()
            elif kind == "settlement":
                assert_problem(r, 422, "settlement-exceeds-balance")
            else:
                raise AssertionError(f"expense refused: {r.status_code} {r.text}")


def _reader(
    live: Live, groups: list[Group], stop: threading.Event, reads: list[int], barrier: threading.Barrier
) -> None:
    with live.client() as client:
        client.get("/health")
        barrier.wait(timeout=30)
        n = 0
        while not stop.is_set() or n < 2 * len(groups):
            g = groups[n % len(groups)]
            r = client.get(f"/v1/groups/{g.id}/balances", headers=g.members[0].headers)
            assert r.status_code == 200, r.text
            body = r.json()
            nets = [minor(b["net"], g.decimals) for b in body["balances"]]
            assert len(nets) == len(g.people)
            assert sum(nets) == 0, f"a balances read does not sum to zero: {body}"
            n += 1
        reads.append(n)


def test_conservation_under_concurrent_writers_and_readers(live: Live) -> None:
    api = live.api()
    users = [api.user(f"U{i}") for i in range(6)]
    # Two overlapping groups (users 2 and 3 are in both), different currencies.
    g1 = Group(api.group(users[0], "USD", tuple(users[1:4])), "USD", 2, users[0:4])
    g2 = Group(api.group(users[2], "JPY", (users[3], users[4], users[5])), "JPY", 0, users[2:6])
    groups = [g1, g2]
    for g in groups:  # a guest in each group (contract v2): a member without an account
        r = api.client.post(f"/v1/groups/{g.id}/members", json={"name": f"Guest of {g.currency}"},
                            headers=g.members[0].headers)  # fmt: skip
        assert r.status_code == 201, r.text
        g.guests = [Who(m["user_id"], "", "") for m in r.json()["members"] if m["guest"]]
    acks = Acks()
    stop = threading.Event()
    reads: list[int] = []
    barrier = threading.Barrier(WRITERS + READERS)
    errors: list[BaseException] = []

    def guarded(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # surfaced below; the barrier is broken so nobody waits forever
            errors.append(exc)
            barrier.abort()
            stop.set()

    writers = [
        threading.Thread(target=guarded, args=(_writer, live, groups, acks, seed, barrier)) for seed in range(WRITERS)
    ]
    readers = [
        threading.Thread(target=guarded, args=(_reader, live, groups, stop, reads, barrier)) for _ in range(READERS)
    ]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join(timeout=120)
    stop.set()
    for t in readers:
        t.join(timeout=60)
    assert not errors, errors[0]
    assert not any(t.is_alive() for t in writers + readers)
    assert all(status in (201, 422) for _, status in acks.statuses), acks.statuses
    assert acks.statuses[("expense", 201)] == len(acks.expenses) > 50, acks.statuses
    assert len(acks.settlements) > 5, acks.statuses
    assert len(reads) == READERS and sum(reads) > 20, reads

    # The model: apply every acknowledged write once.
    model: dict[str, dict[str, int]] = {g.id: {u.id: 0 for u in g.people} for g in groups}
    decimals = {g.id: g.decimals for g in groups}
    for e in acks.expenses.values():
        d, nets = decimals[e["group_id"]], model[e["group_id"]]
        for p in e["payers"]:
            nets[p["user_id"]] += minor(p["amount"], d)
        assert sum(minor(p["amount"], d) for p in e["payers"]) == minor(e["amount"], d)
        assert sum(minor(s["amount"], d) for s in e["shares"]) == minor(e["amount"], d)
        for s in e["shares"]:
            nets[s["user_id"]] -= minor(s["amount"], d)
    for s in acks.settlements.values():
        d, nets = decimals[s["group_id"]], model[s["group_id"]]
        nets[s["from_user_id"]] += minor(s["amount"], d)
        nets[s["to_user_id"]] -= minor(s["amount"], d)

    # The API's final nets equal the model.
    for g in groups:
        assert {u: minor(n, g.decimals) for u, n in api.nets(g.members[0], g.id).items()} == model[g.id]
    # Nothing was written that was not acknowledged.
    assert live.count("expenses") == len(acks.expenses)
    assert live.count("settlements") == len(acks.settlements)
    # The ledger sums per user equal the model, and each member's balance slots sum to the ledger sums.
    ledger: dict[str, dict[str, int]] = defaultdict(dict)
    for r in live.sql("SELECT group_id, user_id, sum(amount_minor) AS s FROM ledger_entries GROUP BY 1, 2"):
        ledger[str(r["group_id"])][str(r["user_id"])] = int(r["s"])
    for g in groups:
        assert {u: ledger[g.id].get(u, 0) for u in model[g.id]} == model[g.id]
    drift = live.sql(
        """
        SELECT m.group_id, m.user_id, m.net_minor, coalesce(l.s, 0) AS s
        FROM member_balances m LEFT JOIN (SELECT group_id, user_id, sum(amount_minor) AS s FROM ledger_entries
                                      GROUP BY 1, 2) l USING (group_id, user_id)
        WHERE m.net_minor <> coalesce(l.s, 0)
        """
    )
    assert drift == [], drift
    unbalanced = live.sql("SELECT posting_id FROM ledger_entries GROUP BY posting_id HAVING sum(amount_minor) <> 0")
    assert unbalanced == []
    # No settlement ever took a payer past zero or a payee below it, at the moment it was applied.
    assert settlement_overshoots(live) == []


# ---- over-settlement ---------------------------------------------------------------------------------------


def _settle_call(path: str, who: Who, body: dict[str, str], key: str | None) -> Any:
    headers = dict(who.headers) | ({"Idempotency-Key": key} if key else {})

    def call(client: httpx.Client) -> httpx.Response:
        return client.post(path, json=body, headers=headers)

    return call


def test_concurrent_settlements_never_exceed_the_balance(live: Live) -> None:
    """B owes A X; 20 concurrent settlements B→A of X: exactly one succeeds. Then 20 of X/4: four do."""
    api = live.api()
    a, b = api.user("A"), api.user("B")
    gid = api.group(a, members=(b,))
    path = f"/v1/groups/{gid}/settlements"
    for round_, (part, winners) in enumerate([(1, 1), (1, 1), (4, 4)]):
        api.expense(a, gid, "80.00", a, [b])  # b owes a 80.00
        assert api.nets(a, gid) == {a.id: "80.00", b.id: "-80.00"}
        amount = money(8000 // part, 2)
        body = {"from_user_id": b.id, "to_user_id": a.id, "amount": amount}
        # Half with distinct idempotency keys, half without; sent by either party.
        calls = [_settle_call(path, (a, b)[i % 2], body, f"r{round_}-{i}" if i < 10 else None) for i in range(20)]

        responses = storm(live.base_url, calls)

        statuses = Counter(r.status_code for r in responses)
        assert statuses == {201: winners, 422: 20 - winners}, statuses
        for r in responses:
            if r.status_code == 422:
                assert_problem(r, 422, "settlement-exceeds-balance")
        assert api.nets(a, gid) == {a.id: "0.00", b.id: "0.00"}
    assert live.count("settlements") == 6
    assert settlement_overshoots(live) == []  # never beyond zero, not even in between
    nets = live.sql("SELECT user_id, net_minor FROM member_balances WHERE group_id = $1", uuid.UUID(gid))
    assert {str(r["user_id"]): r["net_minor"] for r in nets} == {a.id: 0, b.id: 0}


# ---- ordered locking -------------------------------------------------------------------------------------------


def test_overlapping_expenses_in_opposite_orders_never_deadlock(live: Live) -> None:
    """Concurrent expenses over overlapping member sets, listed and paid in opposite orders: all 201,
    no deadlock (no retried 40P01 in the server log: also checked by the live fixture), no lost update.

    The last round holds each transaction's locks for a moment before commit (X-Test-Delay-Ms), so
    waiters pile up: any writer that took its locks in request order rather than a fixed order
    would hold some rows while waiting for others, and the cycles would show as deadlocks.
    """
    api = live.api()
    members = [api.user(f"M{i}") for i in range(6)]
    gid = api.group(members[0], members=tuple(members[1:]))
    path = f"/v1/groups/{gid}/expenses"

    @dataclass(frozen=True)
    class Planned:
        payer: str
        window: list[str]
        body: dict[str, Any]
        headers: dict[str, str]

    planned = []
    for i in range(48):
        window = members[i % 3 : i % 3 + 4]  # overlapping sets of four
        ordered = window if i % 2 == 0 else list(reversed(window))
        body = {
            "description": f"o{i}",
            "amount": "12.00",
            "paid_by": ordered[-1].id,
            "split_type": "equal",
            "participants": [{"user_id": p.id} for p in ordered],
        }
        planned.append(Planned(ordered[-1].id, [p.id for p in window], body, ordered[0].headers))

    def send(p: Planned, extra: dict[str, str]) -> Callable[[httpx.Client], httpx.Response]:
        return lambda client: client.post(path, json=p.body, headers=p.headers | extra)

    rounds: list[tuple[int, dict[str, str]]] = [(48, {}), (48, {}), (24, {"X-Test-Delay-Ms": "20"})]
    expected = {m.id: 0 for m in members}
    for n, extra in rounds:
        responses = storm(live.base_url, [send(p, extra) for p in planned[:n]])
        assert Counter(r.status_code for r in responses) == {201: n}, [
            r.text for r in responses if r.status_code != 201
        ]
        for p in planned[:n]:
            expected[p.payer] += 1200
            for u in p.window:
                expected[u] -= 300
    assert live.retries("40P01") == 0
    assert {u: minor(n, 2) for u, n in api.nets(members[0], gid).items()} == expected
    assert live.count("expenses") == sum(n for n, _ in rounds)


# ---- member removal against expenses (balance slots) ---------------------------------------------------------


def test_member_removal_races_expenses_and_never_strands_a_balance(live: Live) -> None:
    """C (net zero) is removed while expenses that make C owe are being posted. An expense locks one
    balance slot of C, a removal all of them, so exactly one side wins: either the removal commits
    first (every later expense naming C is a 422) or an expense does (C now owes, every removal is a
    409). Both a 204 and a 201 would mean a membership was deleted with a non-zero balance."""
    outcomes = Counter(_removal_round(live, delayed=bool(round_ % 2)) for round_ in range(4))
    assert sum(outcomes.values()) == 4


def _removal_round(live: Live, delayed: bool) -> str:
    api = live.api()
    a, b, c = api.user("A"), api.user("B"), api.user("C")
    gid = api.group(a, members=(b, c))
    body = {"description": "d", "amount": "2.00", "paid_by": a.id, "split_type": "equal",
            "participants": [{"user_id": a.id}, {"user_id": c.id}]}  # fmt: skip
    delay = {"X-Test-Delay-Ms": "15"} if delayed else {}

    def expense(client: httpx.Client) -> httpx.Response:
        return client.post(f"/v1/groups/{gid}/expenses", json=body, headers=a.headers | delay)

    def remove(client: httpx.Client) -> httpx.Response:
        return client.delete(f"/v1/groups/{gid}/members/{c.id}", headers=b.headers)

    calls = [remove if i % 3 == 0 else expense for i in range(18)]
    responses = storm(live.base_url, calls)
    removals = Counter(r.status_code for r, call in zip(responses, calls, strict=True) if call is remove)
    expenses = Counter(r.status_code for r, call in zip(responses, calls, strict=True) if call is expense)
    assert set(removals) <= {204, 404, 409} and set(expenses) <= {201, 422}, (removals, expenses)
    assert not (removals[204] and expenses[201]), (removals, expenses)
    nets = api.nets(a, gid)
    if removals[204]:
        assert removals[204] == 1 and c.id not in nets and expenses == {422: 12}, (removals, expenses)
        return "removed first"
    assert removals == {409: 6} and expenses == {201: 12}, (removals, expenses)
    assert nets == {a.id: "12.00", b.id: "0.00", c.id: "-12.00"}
    return "expense first"
