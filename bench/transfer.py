"""Export and import at scale (issue #14).

Export: GET .../export of the group of opts.scale_target expenses (10^6; the one the scale step
bulk-loads, reused) as JSON and as CSV, read to the end on one connection: rows per second, and the
peak RSS of each worker while it streams (sampled every 100 ms). Import: POST /v1/groups/import of
opts.scale_target / 10 rows (10^5) as a Splitwise CSV and as an ihatemoney JSON export (4 people, 2
decimals, weights 1, 2, 1.5 and 1): seconds, and the peak RSS per worker."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from bench import log
from bench.model import Context, RatioRow, Report
from bench.scale import large_group
from bench.server import MemoryMonitor, Server

TARGET_EXPORT_ROWS_S = 50_000
TARGET_EXPORT_MIB = 150
TARGET_IMPORT_S = 30.0
CHUNK = 1 << 20
PEOPLE = ("Ann", "Ben", "Cat", "Dan")


def _peak(server: Server, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run action while sampling the workers' RSS; its result plus the baseline and peak per worker."""
    before = {w.pid: round(w.memory_info().rss / 2**20, 1) for w in server.workers}
    monitor = MemoryMonitor(server.workers)
    monitor.start()
    try:
        result = action()
    finally:
        monitor.finish()
    peaks = {pid: round(rss / 2**20, 1) for pid, rss in monitor.peak.items()}
    return {**result, "rss_before_mib": before, "peak_rss_mib": peaks, "peak_rss_max_mib": max(peaks.values())}


def _export(server: Server, group_id: str, token: str, *, fmt: str) -> dict[str, Any]:
    """Stream the export to the end, counting its records; seconds and rows per second."""
    marker = b'"versions":' if fmt == "json" else b"\n"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    t0 = time.monotonic()
    conn.request("GET", f"/v1/groups/{group_id}/export?format={fmt}", headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"export {fmt} -> {response.status} {response.read()[:300]!r}")
    rows = size = 0
    tail = b""
    while chunk := response.read(CHUNK):
        size += len(chunk)
        window = tail + chunk
        rows += window.count(marker) - tail.count(marker)
        tail = window[-(len(marker) - 1) :] if len(marker) > 1 else b""
    elapsed = time.monotonic() - t0
    conn.close()
    rows -= 1 if fmt == "csv" else 0  # the header line
    return {"rows": rows, "bytes": size, "seconds": round(elapsed, 2), "rows_per_s": round(rows / elapsed)}


def cents(minor: int) -> str:
    """Minor units as a decimal string, by integer arithmetic (never a float)."""
    sign, whole = ("-" if minor < 0 else ""), abs(minor)
    return f"{sign}{whole // 100}.{whole % 100:02d}"


def splitwise_csv(rows: int) -> bytes:
    lines = [f"Date,Description,Category,Cost,Currency,{','.join(PEOPLE)}", ""]
    for i in range(rows):
        cost = 1000 + i % 997  # cents; the payer paid all, the four share it (remainders go to the first)
        share, extra = divmod(cost, 4)
        cells = [-(share + (1 if j < extra else 0)) for j in range(4)]
        cells[i % 4] += cost
        lines.append(f"2024-01-{1 + i % 28:02d},row {i},General,{cents(cost)},USD," + ",".join(map(cents, cells)))
    return ("\n".join(lines) + "\n").encode()


def ihatemoney_json(rows: int) -> bytes:
    """ihatemoney's layout, its numbers written as it prints them (10.07, 1.5), built as text."""
    weights = {"Ann": "1.0", "Ben": "2.0", "Cat": "1.5", "Dan": "1.0"}
    bills = []
    for i in range(rows):
        kind, payer = "Reimbursement" if i % 10 == 0 else "Expense", PEOPLE[i % 4]
        bills.append(
            f'{{"what":"bill {i}","bill_type":"{kind}","amount":{cents(1000 + i % 997)},"currency":"USD",'
            f'"date":"2024-01-{1 + i % 28:02d}","payer_name":"{payer}","payer_weight":{weights[payer]},'
            f'"owers":{json.dumps(list(PEOPLE[: 2 + i % 3]))}}}'
        )
    return ("[" + ",".join(bills) + "]").encode()


def _import(server: Server, token: str, body: bytes, *, media_type: str, query: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    t0 = time.monotonic()
    conn.request("POST", f"/v1/groups/import?{query}", body=body,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": media_type})  # fmt: skip
    response = conn.getresponse()
    answer = response.read()
    elapsed = time.monotonic() - t0
    conn.close()
    if response.status != 201:
        raise RuntimeError(f"import {media_type} -> {response.status} {answer[:500]!r}")
    summary = json.loads(answer)["import"]
    return {"bytes": len(body), "seconds": round(elapsed, 2), "expenses": summary["expenses"],
            "settlements": summary["settlements"], "adjustments": summary["adjustments_count"]}  # fmt: skip


def run_transfer(ctx: Context) -> dict[str, Any]:
    group, expenses, _ = large_group(ctx)
    token = group["members"][0]["token"]
    result: dict[str, Any] = {"group_expenses": expenses, "export": {}, "import": {}}
    for fmt in ("json", "csv"):
        log(f"transfer: export {fmt} of {expenses} expenses")
        result["export"][fmt] = _peak(ctx.server, partial(_export, ctx.server, group["id"], token, fmt=fmt))
        log(f"transfer: {result['export'][fmt]}")
    rows = max(1, expenses // 10)
    files = {"splitwise": (splitwise_csv(rows), "text/csv", "me=Ann"),
             "ihatemoney": (ihatemoney_json(rows), "application/json", "me=Ann&currency=USD")}  # fmt: skip
    for source, (body, media_type, query) in files.items():
        log(f"transfer: import {rows} rows ({source}, {len(body) / 2**20:.1f} MiB)")
        upload = partial(_import, ctx.server, token, body, media_type=media_type, query=query)
        result["import"][source] = {"rows": rows, **_peak(ctx.server, upload)}
        log(f"transfer: {result['import'][source]}")
    return result


def transfer_ratios(t: dict[str, Any]) -> dict[str, RatioRow]:
    n = f"{t['group_expenses']:,}"
    rows: dict[str, RatioRow] = {}
    for fmt, e in t["export"].items():
        rows[f"export {fmt} rows/s, {n} expenses"] = (e["rows_per_s"], TARGET_EXPORT_ROWS_S, ">=")
        rows[f"export {fmt} peak RSS per worker, MiB"] = (e["peak_rss_max_mib"], TARGET_EXPORT_MIB, "<=")
    for source, i in t["import"].items():
        rows[f"import {i['rows']:,} rows ({source}), s"] = (i["seconds"], TARGET_IMPORT_S, "<=")
    return rows


def render_transfer(r: Report) -> list[str]:
    t = r.get("transfer")
    if not t:
        return []
    lines = [
        f"Export and import: GET .../export of the group of {t['group_expenses']:,} expenses, read to the end on one "
        "connection; POST /v1/groups/import of generated files (4 people). Peak RSS per worker while each ran.",
        "",
        "| step | rows | MiB | seconds | rows/s | peak RSS per worker, MiB (before) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    steps = [(f"export {f}", e) for f, e in t["export"].items()] + [(f"import {s}", i) for s, i in t["import"].items()]
    for name, x in steps:
        memory = ", ".join(f"{x['peak_rss_mib'][p]} ({x['rss_before_mib'][p]})" for p in x["peak_rss_mib"])
        rate = round(x["rows"] / x["seconds"]) if x["seconds"] else 0
        lines.append(f"| {name} | {x['rows']:,} | {x['bytes'] / 2**20:.1f} | {x['seconds']} | {rate:,} | {memory} |")
    return [*lines, ""]
