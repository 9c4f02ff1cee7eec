"""Interleaved A/B (--ab COMMIT): this tree (A) against COMMIT (B), round after round on the same machine.

B is checked out with `git worktree add --detach` into a temporary directory (removed at the end). In
each round pgbench runs once (no app server up), then each side in turn (A B, then B A, ...): the bench
database dropped and re-created, migrated by that side's own `app.main.run_migrations` (a subprocess in
its tree), its own uvicorn (cwd and PYTHONPATH = its tree), the groups seeded, a warm-up, and the chosen
load scenarios. Nothing of B is imported into this process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import ROOT, T0, log
from bench.database import Database, fresh_database, open_database, postgres_report, release_database
from bench.load import run_load, warm_up
from bench.machine import git_info
from bench.main import begin_report
from bench.model import Report, scenario_ratios
from bench.options import Options
from bench.pgbench import run_pgbench
from bench.report import machine_line, write_results
from bench.scenarios import LOAD_SCENARIOS
from bench.seed import seed_fixture
from bench.server import start_server, stop_server, uvicorn_command


@dataclass(frozen=True)
class Side:
    key: str  # "A" (this tree) or "B" (the commit)
    tree: Path
    code: str  # what is measured, for the report


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


@contextlib.contextmanager
def commit_tree(commit: str) -> Iterator[Side]:
    """COMMIT checked out (detached) in a temporary directory, removed afterwards."""
    try:
        sha = _git("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    except RuntimeError:
        raise SystemExit(f"--ab {commit}: not a commit of this repository") from None
    subject = _git("log", "-1", "--format=%h %<(72,trunc)%s", sha).strip()
    parent = Path(tempfile.mkdtemp(prefix="quits-ab-"))
    tree = parent / "tree"
    log(f"git worktree add --detach {tree} {sha[:12]}")
    _git("worktree", "add", "--detach", str(tree), sha)
    try:
        yield Side("B", tree, f"{commit} = {subject}")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
        shutil.rmtree(parent, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)


def run_side(opts: Options, *, side: Side, db: Database, stamp: str) -> list[dict[str, Any]]:
    """One side of a round: fresh database with its migrations, its server, seed, warm-up, the scenarios."""
    log(f"--- side {side.key} ({side.code})")
    fresh_database(db, side.tree)
    server = start_server(opts, db=db, log_path=opts.out / f"server-{stamp}.log", tree=side.tree)
    tmp = Path(tempfile.mkdtemp(prefix="quits-bench-"))
    try:
        fixture = seed_fixture(server.base, opts.groups, opts.members)
        warm_up(opts, server=server, db=db, tmp=tmp, fixture=fixture, stamp=stamp)
        return run_load(opts, server=server, db=db, tmp=tmp, fixture=fixture, stamp=stamp, scenarios=LOAD_SCENARIOS)
    finally:
        stop_server(server)
        shutil.rmtree(tmp, ignore_errors=True)


def figures(runs: list[dict[str, Any]], pgbench: dict[str, Any] | None) -> dict[str, float]:
    """The compared figures of one side in one round: per scenario req/s, p99, errors, CPU ms per request,
    then the ratios the scenarios declare (to pgbench, hot / spread)."""
    out: dict[str, float] = {}
    for r in runs:
        x, name = r["result"], f"{r['name']} {r['placement']}"
        out[f"{name} req/s"] = x["rps"]
        out[f"{name} p99 ms"] = x["p99_ms"]
        out[f"{name} errors"] = x["errors"]
        out[f"{name} CPU ms/request, workers"] = x["cpu_ms_per_request"]["workers"]
        out[f"{name} CPU ms/request, postgres"] = x["cpu_ms_per_request"]["postgres"]
    for label, (value, _, _) in scenario_ratios(LOAD_SCENARIOS, runs, pgbench).items():
        out[label] = value
    return out


def run_round(opts: Options, *, number: int, sides: tuple[Side, Side], db: Database, stamp: str) -> dict[str, Any]:
    log(f"=== A/B round {number} of {opts.ab_rounds}")
    pgbench = None if opts.skip_pgbench else run_pgbench(opts, db, None)
    order = sides if number % 2 else sides[::-1]
    result: dict[str, Any] = {"round": number, "order": [s.key for s in order], "pgbench": pgbench}
    for side in order:
        runs = run_side(opts, side=side, db=db, stamp=f"{stamp}-r{number}-{side.key}")
        result[side.key] = {"figures": figures(runs, pgbench), "scenarios": runs}
    return result


def rel(a: float, b: float) -> str:
    """A against B, relative: (A - B) / B."""
    return f"{100 * (a - b) / b:+.1f}%" if b else ""


def _aggregate(label: str, values: list[float]) -> float:
    return float(sum(values)) if label.endswith(" errors") else float(statistics.median(values))


def overall(rounds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per figure: A and B over the rounds (median; errors: total) and A vs B, also per round."""
    out: dict[str, dict[str, Any]] = {}
    for label in rounds[0]["A"]["figures"]:
        a = [r["A"]["figures"].get(label) for r in rounds]
        b = [r["B"]["figures"].get(label) for r in rounds]
        pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
        if not pairs:
            continue
        a_all, b_all = _aggregate(label, [x for x, _ in pairs]), _aggregate(label, [y for _, y in pairs])
        out[label] = {"A": a_all, "B": b_all, "A_vs_B": rel(a_all, b_all), "per_round": [rel(x, y) for x, y in pairs]}
    return out


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.2f}"


def render_ab(r: Report) -> str:
    cfg, ab = r["config"], r["ab"]
    lines = [
        f"# quits A/B benchmark — {r['date']}",
        "",
        machine_line(r),
        f"- command: `{r['command']}`",
        f"- A: this tree ({ab['A']['tree']}) at {ab['A']['code']}",
        f"- B: {ab['B']['code']} (git worktree add --detach, temporary)",
        f"- PostgreSQL: {r['postgres']['version']} ({r['postgres']['where']})",
        f"- server: `{r['server_command']}` from each side's own tree, DB_POOL_SIZE={cfg['pool_size']} "
        f"DB_MAX_OVERFLOW={cfg['max_overflow']} DB_WRITE_POOL_SIZE={cfg['write_pool_size']} "
        f"{' '.join(cfg['server_env'])}",
        f"- load: wrk {cfg['wrk_threads']} threads, {cfg['clients']} connections, {cfg['duration']:g} s per scenario "
        f"({', '.join(cfg['only'])}) after {cfg['warmup']:g} s of warm-up; {cfg['groups']} groups x "
        f"{cfg['members']} members + 1 hot group; rounds: {len(ab['rounds'])}, sides alternating (A B, B A, ...), "
        "each on a fresh database migrated by its own tree; pgbench once per round with no app server up",
        "",
        "Overall: median of the rounds (errors: total). A vs B = (A - B) / B: positive is better for req/s "
        "and the ratios to pgbench, negative for p99 and CPU ms/request.",
        "",
        "| figure | A | B | A vs B | per round |",
        "|---|---:|---:|---:|---|",
    ]
    tps = [x["pgbench"]["tps"] for x in ab["rounds"] if x["pgbench"]]
    if tps:
        per_round = ", ".join(f"{t:.0f}" for t in tps)
        lines.append(f"| pgbench TPS (both) | {statistics.median(tps):.0f} | | | {per_round} |")
    for label, f in ab["overall"].items():
        lines.append(f"| {label} | {_num(f['A'])} | {_num(f['B'])} | {f['A_vs_B']} | {', '.join(f['per_round'])} |")
    for x in ab["rounds"]:
        lines += _render_round(x)
    lines += ["", f"Total: {r['total_s']} s", ""]
    return "\n".join(lines)


def _render_round(x: dict[str, Any]) -> list[str]:
    pg = x["pgbench"]
    head = f"Round {x['round']} ({' then '.join(x['order'])})"
    if pg:
        head += f": pgbench {pg['tps']:.0f} TPS, p99 {pg.get('latency_p99_ms')} ms"
    lines = ["", head, "", "| figure | A | B | A vs B |", "|---|---:|---:|---:|"]
    for label, a in x["A"]["figures"].items():
        b = x["B"]["figures"].get(label)
        if b is not None:
            lines.append(f"| {label} | {_num(a)} | {_num(b)} | {rel(a, b)} |")
    return lines


def _rounds(opts: Options, *, sides: tuple[Side, Side], db: Database, stamp: str) -> list[dict[str, Any]]:
    rounds = []
    for number in range(1, opts.ab_rounds + 1):
        rounds.append(run_round(opts, number=number, sides=sides, db=db, stamp=stamp))
    return rounds


def run_ab(opts: Options, argv: list[str] | None) -> int:
    if opts.ab is None:
        raise ValueError("run_ab needs --ab COMMIT")
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    report = begin_report(opts, argv, started)
    if opts.profile or not opts.skip_scale:
        log("A/B mode: load scenarios and pgbench only (no profile, no scale step)")
    with commit_tree(opts.ab) as b:
        a = Side("A", ROOT, git_info(ROOT))
        db = open_database(opts)
        try:
            report["postgres"] = postgres_report(db)
            rounds = _rounds(opts, sides=(a, b), db=db, stamp=f"ab-{stamp}")
        finally:
            release_database(db)
    report["server_command"] = " ".join(["python", *uvicorn_command(opts, port=0)[1:]]).replace("--port 0", "--port …")
    report["ab"] = {
        "A": {"tree": str(a.tree), "code": a.code},
        "B": {"commit": opts.ab, "code": b.code},
        "rounds": rounds,
        "overall": overall(rounds),
    }
    report["total_s"] = round(time.monotonic() - T0, 1)
    text = render_ab(report)
    print(text)
    write_results(opts.out, prefix="ab-", stamp=stamp, report=report, text=text)
    return 0
