"""Helpers for the concurrency suite: the live server handle, its log checks, parallel clients, money."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy.engine import URL

from tests.api import Api
from tests.dbutil import run_sql

REQUEST_TIMEOUT_S = 30.0

T = TypeVar("T")

# ---- the server log --------------------------------------------------------------------------------

# Never acceptable anywhere in the server log.
_FORBIDDEN = [
    (re.compile(r"Traceback \(most recent call last\)"), "a traceback"),
    (re.compile(r"^ERROR:", re.M), "an ERROR line"),
    (re.compile(r"unhandled error"), "an unhandled error"),
    (re.compile(r"deadlock", re.I), "a deadlock"),
    (re.compile(r'HTTP/1\.[01]" 500 '), "a 500 response"),
]
_RESPONSE_5XX = re.compile(r'HTTP/1\.[01]" (5(?!00)\d\d) ')
CONFLICT = re.compile(r"transient conflict (\w+), attempt (\d+) of (\d+)")


def log_problems(log: str, allowed_conflicts: set[str], allowed_5xx: set[int]) -> list[str]:
    """What in a slice of the server log is an error rather than an expected retry.

    A retried 55P03 (a lock wait that hit lock_timeout) is a legitimate retry under contention.
    40001 never happens naturally at READ COMMITTED and 40P01 is a real deadlock, so a retry of
    either is only acceptable when the test injected it with X-Test-Fault.
    """
    found = [f"{what}: {m.group(0)!r}" for pattern, what in _FORBIDDEN for m in pattern.finditer(log)]
    found += [
        f"an unexpected {m.group(1)} response"
        for m in _RESPONSE_5XX.finditer(log)
        if int(m.group(1)) not in allowed_5xx
    ]
    found += [
        f"an unexpected retry: {m.group(0)!r}"
        for m in CONFLICT.finditer(log)
        if m.group(1) != "55P03" and m.group(1) not in allowed_conflicts
    ]
    return found


@dataclass
class Server:
    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def log_text(self, start: int = 0) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(start)
            return f.read().decode("utf-8", "replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size


@dataclass
class Live:
    """The running server as one test sees it: its slice of the log and what that may contain."""

    server: Server
    db_url: URL
    log_start: int
    allowed_conflicts: set[str] = field(default_factory=set)
    allowed_5xx: set[int] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def client(self, timeout: float = REQUEST_TIMEOUT_S) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def api(self) -> Api:
        return Api(self.client())

    def allow(self, *, conflicts: Sequence[str] = (), statuses: Sequence[int] = ()) -> None:
        """This test injects these SQLSTATEs / expects these 5xx statuses (500 is never allowed)."""
        self.allowed_conflicts.update(conflicts)
        self.allowed_5xx.update(statuses)

    def log(self) -> str:
        return self.server.log_text(self.log_start)

    def retries(self, code: str) -> int:
        """How many 'transient conflict <code>' retries the server logged during this test."""
        return sum(1 for m in CONFLICT.finditer(self.log()) if m.group(1) == code)

    def sql(self, query: str, *args: Any) -> list[Any]:
        return run_sql(self.db_url, query, *args)

    def count(self, table: str) -> int:
        return int(self.sql(f"SELECT count(*) AS n FROM {table}")[0]["n"])


# ---- parallel clients ------------------------------------------------------------------------------


def storm(
    base_url: str,
    calls: Sequence[Callable[[httpx.Client], T]],
    timeout: float = REQUEST_TIMEOUT_S,
    warm: Callable[[httpx.Client], object] | None = None,
) -> list[T]:
    """Run every call in its own thread with its own httpx.Client, released together by a barrier.

    Before the barrier each client connects and warms up the server (GET /health, or `warm`, e.g.
    an authenticated GET so both workers have the caller's token cached and pooled connections
    open), so the racing requests leave at the same moment and race inside the server, not in its
    start-up costs. Results come back in the order of `calls`; any exception is re-raised.
    """
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[httpx.Client], T]) -> T:
        with httpx.Client(base_url=base_url, timeout=timeout) as client:
            (warm or (lambda c: c.get("/health")))(client)
            barrier.wait(timeout=30)
            return call(client)

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, c) for c in calls]
        return [f.result() for f in futures]


# ---- money ---------------------------------------------------------------------------------------------


def minor(amount: str, decimals: int) -> int:
    """A response's decimal string (full decimals, optional leading '-') → integer minor units."""
    assert re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?", amount), amount
    whole, _, frac = amount.lstrip("-").partition(".")
    assert len(frac) == decimals, f"{amount!r} does not have {decimals} decimals"
    value: int = int(whole) * 10**decimals + (int(frac) if frac else 0)
    return -value if amount.startswith("-") else value


def money(minor_units: int, decimals: int) -> str:
    """Integer minor units → the request's decimal string ("12.34", "100" for 0 decimals)."""
    assert minor_units >= 0
    if decimals == 0:
        return str(minor_units)
    whole, frac = divmod(minor_units, 10**decimals)
    return f"{whole}.{frac:0{decimals}d}"


# ---- ledger history --------------------------------------------------------------------------------------


def settlement_overshoots(live: Live) -> list[str]:
    """Replay every member's ledger in seq order and report settlements that overshot.

    A posting takes its members' balance locks before inserting its entries, so for any one member
    the seq order of their entries is the order in which their balance changed. Right after a
    settlement the payer's net must still be <= 0 and the payee's >= 0 (amount <= min(-from, to)).
    """
    running: dict[tuple[Any, Any], int] = {}
    found = []
    rows = live.sql("SELECT seq, group_id, user_id, amount_minor, kind FROM ledger_entries ORDER BY seq")
    for r in rows:
        who = (r["group_id"], r["user_id"])
        running[who] = running.get(who, 0) + r["amount_minor"]
        if r["kind"] == "settlement":
            paid, net = r["amount_minor"] > 0, running[who]
            if (paid and net > 0) or (not paid and net < 0):
                side = "payer" if paid else "payee"
                found.append(f"settlement entry seq {r['seq']} left the {side} {r['user_id']} at {net}")
    return found
