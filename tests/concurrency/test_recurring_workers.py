"""Recurring rules on real two-worker servers: a storm of due rules, and a worker killed with SIGKILL.

The rules are created through the suite's server (its schedulers are off), dated around a pinned day
in the future; then a server of the test's own starts with RECURRING_TODAY set to that day (the
injectable clock), so both of its workers find every rule due at once, as after a long downtime.
Every (rule, date) must be exactly one expense: none missing, none twice, the ledger whole.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api import Who
from tests.concurrency.conftest import launch
from tests.concurrency.helpers import Live, Server, log_problems
from tests.dbutil import assert_ledger_invariants

PINNED = dt.date(2031, 6, 10)  # the servers' "today": in the future, so the suite's server never makes them
GROUPS = 10
THREADS = 8
DONE_TIMEOUT_S = 180.0
SUPERVISOR_WAIT_S = 5.0  # for the supervisor to notice a killed worker and log it (it looks every 0.5 s)


def _scheduler_env(*, lease_s: str, batch: str = "10") -> dict[str, str]:
    return {
        "RECURRING_TODAY": PINNED.isoformat(),
        "RECURRING_INTERVAL_MS": "50",
        "RECURRING_BATCH": batch,
        "RECURRING_LEASE_S": lease_s,
        # A scheduler uses one connection of each pool at a time: keep the shared server's slots for others.
        "DB_POOL_SIZE": "3",
        "DB_MAX_OVERFLOW": "2",
        "DB_WRITE_POOL_SIZE": "2",
    }


def _create_rules(live: Live, *, rules: int, days_due: int) -> dict[str, list[str]]:
    """rules daily rules over GROUPS groups of three; rule i owes 1 + i % days_due occurrences on PINNED.
    Returns each rule's expected dates."""
    api = live.api()
    groups: list[tuple[Who, str, list[Who]]] = []
    for _ in range(GROUPS):
        a, b, c = api.user("A"), api.user("B"), api.user("C")
        groups.append((a, api.group(a, members=(b, c)), [a, b, c]))

    def some(first: int) -> list[tuple[str, list[str]]]:
        out = []
        with httpx.Client(base_url=live.base_url, timeout=30) as client:
            for i in range(first, rules, THREADS):
                who, gid, members = groups[i % GROUPS]
                back = i % days_due
                start = PINNED - dt.timedelta(days=back)
                body = {
                    "description": f"rule {i}", "amount": "10.00", "paid_by": members[i % 3].id,
                    "split_type": "equal", "participants": [{"user_id": m.id} for m in members],
                    "schedule": {"every": "day", "start_date": str(start)},
                }  # fmt: skip
                r = client.post(f"/v1/groups/{gid}/recurring", json=body, headers=who.headers)
                assert r.status_code == 201, r.text
                out.append((r.json()["id"], [str(start + dt.timedelta(days=d)) for d in range(back + 1)]))
        return out

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return dict(pair for chunk in pool.map(some, range(THREADS)) for pair in chunk)


def _made(live: Live) -> dict[str, list[str]]:
    rows = live.sql("SELECT recurring_id, date FROM expenses WHERE recurring_id IS NOT NULL ORDER BY created_at, id")
    made: dict[str, list[str]] = {}
    for r in rows:
        made.setdefault(str(r["recurring_id"]), []).append(str(r["date"]))
    return made


def _wait_until_done(live: Live, expected: int, srv: Server) -> None:
    deadline = time.monotonic() + DONE_TIMEOUT_S
    while time.monotonic() < deadline:
        assert srv.process.poll() is None, "the server died:\n" + srv.log_text()[-5000:]
        due = live.sql("SELECT count(*) AS n FROM recurring_rules WHERE active AND next_date <= $1", PINNED)[0]["n"]
        if due == 0 and live.count("expenses") >= expected:
            return
        time.sleep(0.2)
    pytest.fail(f"not done in {DONE_TIMEOUT_S}s: {live.count('expenses')} of {expected} expenses")


def _check(live: Live, expected: dict[str, list[str]], srv: Server) -> None:
    time.sleep(0.5)  # several more passes: nothing new may appear
    made = _made(live)
    assert made == expected  # every rule's dates: none missing, none twice, in date order
    assert live.count("expenses") == sum(len(d) for d in expected.values())
    dupes = live.sql(
        "SELECT recurring_id, date FROM expenses WHERE recurring_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1"
    )
    assert dupes == []
    occurrences = live.sql("SELECT count(*) AS n FROM activity WHERE type = 'expense.created' AND detail ? 'recurring_id'")
    assert occurrences[0]["n"] == live.count("expenses")
    assert_ledger_invariants(live.db_url)
    assert live.sql("SELECT count(*) AS n FROM recurring_rules WHERE next_date <= $1", PINNED)[0]["n"] == 0


@pytest.mark.parametrize(
    ("lease_s", "batch"),
    [
        ("30", "10"),  # as in production: workers share the due rules
        # Adversarial: a claim's lease ends long before the worker is through its batch of 100, so the
        # other worker claims the same rules at the same version, and both race to make each occurrence.
        ("0.1", "100"),
    ],
    ids=["shared-by-leases", "leases-too-short-every-worker-races"],
)
def test_two_workers_storm_of_500_due_rules(live: Live, lease_s: str, batch: str) -> None:
    expected = _create_rules(live, rules=500, days_due=4)
    assert live.count("expenses") == 0
    with launch(live.db_url, _scheduler_env(lease_s=lease_s, batch=batch)) as srv:
        _wait_until_done(live, sum(len(d) for d in expected.values()), srv)
        _check(live, expected, srv)
    assert not log_problems(srv.log_text(), set(), set()), srv.log_text()[-5000:]


def _worker_pids(base_url: str) -> set[int]:
    pids: set[int] = set()
    for _ in range(400):
        with httpx.Client(base_url=base_url, timeout=5) as client:  # a new connection each time
            pids.add(int(client.get("/health").headers["x-test-worker"]))
        if len(pids) == 2:
            return pids
    pytest.fail(f"saw only workers {pids}")


@pytest.fixture
def killed() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:  # never leave a process behind
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_worker_killed_mid_storm_loses_and_duplicates_nothing(live: Live, killed: list[int]) -> None:
    expected = _create_rules(live, rules=200, days_due=8)
    total = sum(len(d) for d in expected.values())
    with launch(live.db_url, _scheduler_env(lease_s="2")) as srv:
        victim = min(_worker_pids(srv.base_url))
        deadline = time.monotonic() + DONE_TIMEOUT_S
        while live.count("expenses") < total // 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        at_kill = live.count("expenses")
        assert 0 < at_kill < total, "the storm was over before the kill"
        killed.append(victim)
        os.kill(victim, signal.SIGKILL)  # no shutdown, no rollback by the worker: whatever it was doing
        _wait_until_done(live, total, srv)
        _check(live, expected, srv)
        died = f"Child process [{victim}] died"  # uvicorn's supervisor looks at its workers every 0.5 s
        deadline = time.monotonic() + SUPERVISOR_WAIT_S
        while died not in srv.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert died in srv.log_text()
    assert not log_problems(srv.log_text(), set(), set()), srv.log_text()[-5000:]
