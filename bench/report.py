"""The results: markdown rendering and the files written (bench/results/<stamp>.{md,json}, latest.*)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import log
from bench.model import TARGET_P99_MS, TARGET_SCALE_RATIO, Measurement, Report

Section = Callable[[Report], list[str]]

# Where each part goes in the markdown; a measurement not named here follows "profile".
LAYOUT = ("pgbench", "ratios", "scale", "memory", "profile")


def ok(good: bool) -> str:
    return "ok" if good else "MISS"


def _starts(x: dict[str, Any]) -> str:
    n = x.get("wrk_starts", 1)
    return f" (wrk started {n} times)" if n > 1 else ""


def cpu_cell(c: dict[str, float]) -> str:
    return (
        f"{c['workers']:.0f} / {c['postgres']:.0f} / {c['load_generator']:.0f} / {c['other']:.0f} "
        f"({c['machine_busy_pct_of_all_cores']:.0f}%)"
    )


def machine_line(r: Report) -> str:
    m = r["machine"]
    return (
        f"- machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['ram_gib']} GiB RAM, {m['kernel']}, Python {m['python']}; "
        f"background load before the run: {r['background_busy_pct']}% of all cores"
    )


def _header(r: Report) -> list[str]:
    cfg = r["config"]
    return [
        f"# quits benchmark — {r['date']}",
        "",
        machine_line(r),
        f"- command: `{r['command']}` on commit {r.get('code', 'unknown')}",
        f"- PostgreSQL: {r['postgres']['version']} ({r['postgres']['where']})",
        f"- server: `{r['server']['command']}` with DB_POOL_SIZE={cfg['pool_size']} "
        f"DB_MAX_OVERFLOW={cfg['max_overflow']} DB_WRITE_POOL_SIZE={cfg.get('write_pool_size')} "
        f"{' '.join(cfg['server_env'])}",
        f"- load: wrk {cfg['wrk_threads']} threads, {cfg['clients']} keep-alive connections, {cfg['duration']:g} s "
        f"per scenario; {cfg['groups']} groups x {cfg['members']} members + 1 hot group of {cfg['members']}",
        "",
    ]


def _load_table(r: Report) -> list[str]:
    lines = [
        "| scenario | groups | req/s | p50 ms | p99 ms | errors | p99 ≤ 50 ms, 0 errors | CPU ms per request: "
        "workers / postgres | CPU, % of one core: workers / postgres / wrk / other (machine busy) |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for s in r["scenarios"]:
        x = s["result"]
        per = x["cpu_ms_per_request"]
        lines.append(
            f"| {s['name']} | {s['placement']} | {x['rps']:.0f} | {x['p50_ms']:.1f} | {x['p99_ms']:.1f} | "
            f"{x['errors']} | {ok(x['p99_ms'] <= TARGET_P99_MS and x['errors'] == 0)} | "
            f"{per['workers']:.2f} / {per['postgres']:.2f} | {cpu_cell(x['cpu'])} |"
        )
    return lines


def _sessions_table(r: Report) -> list[str]:
    lines = [
        "",
        "Database sessions of the service during each scenario (average count, sampled from pg_stat_activity "
        "every 100 ms): running, waiting for a row lock, waiting on IO/WAL, other waits, idle in transaction "
        "(the database waits for the app inside an open transaction), idle in the pool; and the number of "
        "database connections opened during the scenario (pool misses).",
        "",
        "| scenario | groups | running | lock | io/wal | other wait | idle in tx | idle | "
        "connections opened | HTTP connections per worker |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in r["scenarios"]:
        d = s["result"]["db_sessions"]
        lines.append(
            f"| {s['name']} | {s['placement']} | {d['running']} | {d['lock']} | {d['io_wal']} | {d['other_wait']} | "
            f"{d['idle_in_tx']} | {d['idle']} | {d['new_sessions']} | "
            f"{' / '.join(map(str, s['result']['connections_per_worker']))}{_starts(s['result'])} |"
        )
    return lines


def _errors(r: Report) -> list[str]:
    return [
        f"- {s['name']} {s['placement']}: statuses {s['result']['statuses']}, socket errors "
        f"{s['result']['socket_errors']}, e.g. {s['result']['error_samples'][:1]}"
        for s in r["scenarios"]
        if s["result"]["errors"]
    ]


def render_pgbench(r: Report) -> list[str]:
    if not r.get("pgbench"):
        return []
    pg = r["pgbench"]
    per_txn = pg["cpu_ms_per_transaction"]
    return [
        f"pgbench tpcb-like, scale {pg['scale']} (`{pg['command']}`): **{pg['tps']:.0f} TPS**, "
        f"latency avg {pg['latency_avg_ms']} ms, p50 {pg.get('latency_p50_ms')} ms, "
        f"p99 {pg.get('latency_p99_ms')} ms; CPU ms per transaction: postgres "
        f"{per_txn['postgres']:.2f}, pgbench {per_txn['load_generator']:.2f}; "
        f"CPU % of one core, workers / postgres / pgbench / other: {cpu_cell(pg['cpu'])}",
        "",
    ]


def _ratios(r: Report) -> list[str]:
    if not r.get("ratios"):
        return []
    lines = ["| ratio | value | target | |", "|---|---:|---:|---|"]
    for name, (value, target, op) in r["ratios"].items():
        if target is None:
            lines.append(f"| {name} | {value:.2f} | | |")
            continue
        good = value >= target if op == ">=" else value <= target
        lines.append(f"| {name} | {value:.2f} | {op} {target:.2f} | {ok(good)} |")
    return [*lines, ""]


def render_scale(r: Report) -> list[str]:
    if not r.get("scale"):
        return []
    sc, cfg = r["scale"], r["config"]
    ld = sc["load"]
    b, t = f"{sc['base']:,}", f"{sc['target']:,}"
    lines = [
        f"Scale: group A has {b} expenses (created over HTTP), group B {t} (direct SQL: {ld['total_s']} s = "
        f"expenses {ld.get('expenses_s')} s + ledger entries {ld.get('ledger_entries_s')} s + balances "
        f"{ld.get('balances_s')} s + vacuum/analyze {ld.get('vacuum_analyze_s')} s; check {ld['check']}). "
        f"{cfg['scale_samples']} sequential GETs per figure, A and B interleaved after the load.",
        "",
        f"| endpoint | p50 ms A ({b}), before load | p50 ms A ({b}) | p50 ms B ({t}) | p99 ms A | p99 ms B | "
        f"ratio p50 B/A | ≤ {TARGET_SCALE_RATIO} |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for k, e in sc["endpoints"].items():
        lines.append(
            f"| GET {k} | {e['small_before_load']['p50_ms']:.2f} | {e['small']['p50_ms']:.2f} | "
            f"{e['large']['p50_ms']:.2f} | {e['small']['p99_ms']:.2f} | {e['large']['p99_ms']:.2f} | "
            f"{e['ratio_p50']:.2f} | {ok(e['ratio_p50'] <= TARGET_SCALE_RATIO)} |"
        )
    return [*lines, ""]


def _memory(r: Report) -> list[str]:
    return [
        "Peak RSS per uvicorn worker over the whole run (sampled every 100 ms / kernel VmHWM): "
        + ", ".join(
            f"pid {w['pid']}: {w['peak_rss_mib']:.0f} / {w['vmhwm_mib']:.0f} MiB" for w in r["memory"]["workers"]
        )
    ]


def _profile_intro(p: dict[str, Any], native: bool) -> str:
    lu = p["load_under_profiler"]
    return (
        f"Profile: py-spy {'--native ' if native else ''}--gil on every worker during "
        f"create-expense spread ({p['samples']} samples; under the profiler {lu['rps']:.0f} req/s, p99 "
        f"{lu['p99_ms']:.1f} ms). Percentages are of the samples in which a worker held the GIL, by wall "
        f"clock: Python and C work, plus time the OS kept the thread off the CPU while it held the GIL. "
        + (
            "C, Cython and libc frames are shown. "
            if native
            else "C extensions (asyncpg's protocol, orjson, httptools, uvloop) count in the Python frame "
            "that called them. "
        )
        + (
            f"{p['detached_pct']}% of the samples have no app caller on their stack (SQLAlchemy's greenlet "
            f"stacks): app inclusive figures leave them out, layer figures include them. "
            if p["detached_pct"] >= 1
            else ""
        )
        + f"Raw stacks: {', '.join(p['files'])}"
    )


def render_profile(r: Report) -> list[str]:
    p = r.get("profile")
    if not p:
        return []
    if p.get("error"):
        return ["", f"Profile: {p['error']}"]
    lines = [
        "",
        _profile_intro(p, bool(r["config"].get("profile_native"))),
        "",
        "- self time by layer: " + ", ".join(f"{k} {v}%" for k, v in p["self_by_layer_pct"]),
        "- of which in system calls (wall time with the GIL held; on a saturated machine mostly spent "
        "descheduled after waking the process at the other end): "
        + (", ".join(f"{k} {v}%" for k, v in p.get("syscalls_pct", [])) or "not visible without --native"),
        "- inclusive by layer: " + ", ".join(f"{k} {v}%" for k, v in p["inclusive_by_layer_pct"]),
        "- app functions, inclusive (time in the function and everything it calls):",
    ]
    lines += [f"  - {v:5.1f}%  {k}" for k, v in p["app_inclusive_pct"]]
    lines.append("- innermost app frame (each sample charged to the deepest app function on its stack):")
    lines += [f"  - {v:5.1f}%  {k}" for k, v in p["app_innermost_pct"][:12]]
    lines.append("- top self frames:")
    lines += [f"  - {v:5.1f}%  {k}" for k, v in p["top_self_frames_pct"][:15]]
    return lines


_FIXED: dict[str, Section] = {"ratios": _ratios, "memory": _memory}


def render(r: Report, measurements: tuple[Measurement, ...]) -> str:
    """The markdown report; each measurement's lines come from its `render` (placed by LAYOUT)."""
    by_key = {m.key: m.render for m in measurements if m.render is not None}
    lines = [*_header(r), *_load_table(r), *_sessions_table(r), *_errors(r), ""]
    for key in (*LAYOUT, *(k for k in by_key if k not in LAYOUT)):
        section = _FIXED.get(key) or by_key.get(key)
        if section is not None:
            lines += section(r)
    lines += ["", "Phases (s): " + ", ".join(f"{k} {v}" for k, v in r["phases"].items()), ""]
    return "\n".join(lines)


def write_results(out: Path, *, prefix: str, stamp: str, report: Report, text: str) -> None:
    """<out>/<prefix><stamp>.{json,md}, copied to <out>/<prefix>latest.{json,md}."""
    base = out / f"{prefix}{stamp}"
    base.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    base.with_suffix(".md").write_text(text)
    shutil.copyfile(base.with_suffix(".json"), out / f"{prefix}latest.json")
    shutil.copyfile(base.with_suffix(".md"), out / f"{prefix}latest.md")
    log(f"wrote {base}.json and .md (and {prefix}latest.*)")
