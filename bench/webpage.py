"""Web page: the web app's group page (GET /groups/{id}) of a group with 10^6 expenses (10^5 with --quick).

The group is the scale step's 10^6-expense group (bench.scale.large_group: seeded over HTTP, grown by direct SQL
with its ledger entries, hash chain and balance rows, consistent; loaded here when the scale step did not run). The
page is requested with the member's API token as the web session cookie (`quits_session`, exactly what signing in
sets). Reported: the server time the app itself reports (`Server-Timing: app;dur=...`, from the request reaching
the page handler to the rendered page: session, queries, template) and the client's latency, p50 and p99, for the
first page and for the next page of expenses (a keyset cursor). Target: p50 server time <= 100 ms at 10^6 expenses."""

from __future__ import annotations

import http.client
import math
import re
import time
from typing import Any

from bench.model import Context, RatioRow, Report
from bench.scale import WARMUP_ROUNDS, large_group

TARGET_WEB_PAGE_MS = 100.0
_TIMING = re.compile(r"app;dur=([0-9.]+)")
_NEXT = re.compile(r'href="(/groups/[0-9a-f-]{36}\?cursor=[A-Za-z0-9_-]+)#expenses"')


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(ordered[len(ordered) // 2], 2),
        "p99_ms": round(ordered[math.ceil(0.99 * len(ordered)) - 1], 2),
    }


def _get(c: http.client.HTTPConnection, path: str, cookie: str) -> tuple[float, float, str]:
    t0 = time.perf_counter_ns()
    c.request("GET", path, headers={"Cookie": cookie, "Accept-Language": "en-US"})
    r = c.getresponse()
    body = r.read().decode()
    elapsed = (time.perf_counter_ns() - t0) / 1e6
    if r.status != 200:
        raise RuntimeError(f"GET {path} -> {r.status}")
    timing = _TIMING.search(r.getheader("Server-Timing") or "")
    if timing is None:
        raise RuntimeError(f"GET {path}: no Server-Timing")
    return float(timing.group(1)), elapsed, body


def run_web_page(ctx: Context) -> dict[str, Any]:
    opts, server = ctx.opts, ctx.server
    group, expenses, load = large_group(ctx)
    cookie = f"quits_session={group['members'][0]['token']}"
    first = f"/groups/{group['id']}"
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    _, _, body = _get(c, first, cookie)
    found = _NEXT.search(body)
    if found is None:
        raise RuntimeError("the group page has no link to older expenses")
    pages = {"first page": first, "next page (keyset cursor)": found.group(1)}
    server_ms: dict[str, list[float]] = {k: [] for k in pages}
    client_ms: dict[str, list[float]] = {k: [] for k in pages}
    for i in range(opts.scale_samples + WARMUP_ROUNDS):
        for name, path in pages.items():
            served, elapsed, _ = _get(c, path, cookie)
            if i >= WARMUP_ROUNDS:
                server_ms[name].append(served)
                client_ms[name].append(elapsed)
    c.close()
    return {
        "expenses": expenses,
        "load": load,
        "pages": {
            name: {"server": _percentiles(server_ms[name]), "client": _percentiles(client_ms[name])} for name in pages
        },
    }


def web_page_ratios(result: dict[str, Any]) -> dict[str, RatioRow]:
    first = result["pages"]["first page"]["server"]["p50_ms"]
    return {f"web group page p50 server ms at {result['expenses']:,} expenses": (first, TARGET_WEB_PAGE_MS, "<=")}


def render_web_page(r: Report) -> list[str]:
    w = r.get("web_page")
    if not w:
        return []
    lines = [
        f"Web group page (GET /groups/{{id}}, signed in) of a group with {w['expenses']:,} expenses (loaded by "
        f"direct SQL in {w['load']['total_s']} s; check {w['load']['check']}). Server time is the app's own "
        f"Server-Timing; {r['config']['scale_samples']} sequential requests per figure.",
        "",
        "| page | server p50 ms | server p99 ms | client p50 ms | client p99 ms | "
        f"p50 server ≤ {TARGET_WEB_PAGE_MS:g} ms |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, p in w["pages"].items():
        met = "met" if p["server"]["p50_ms"] <= TARGET_WEB_PAGE_MS else "NOT met"
        lines.append(
            f"| {name} | {p['server']['p50_ms']:.2f} | {p['server']['p99_ms']:.2f} | {p['client']['p50_ms']:.2f} | "
            f"{p['client']['p99_ms']:.2f} | {met} |"
        )
    return [*lines, ""]
