"""One benchmark run from start to finish (or the A/B mode with --ab)."""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import T0
from bench.database import Database, postgres_report, release_database, setup_database
from bench.load import run_load, warm_up
from bench.machine import background_busy, ensure_tools, git_info, machine_info
from bench.model import Context, RatioRow, Report, scenario_ratios
from bench.options import Options, parse_args
from bench.report import render, write_results
from bench.scenarios import LOAD_SCENARIOS, MEASUREMENTS, scenario_names
from bench.seed import seed_fixture
from bench.server import MemoryMonitor, Server, start_server, stop_server


class Phases:
    """Wall-clock seconds of each step, in the order they ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._mark = time.monotonic()

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(now - self._mark, 1)
        self._mark = now


def check_only(opts: Options) -> None:
    known = set(scenario_names()) | {s.name for s in LOAD_SCENARIOS}
    unknown = [o for o in opts.only if o not in known]
    if unknown:
        sys.exit(f"unknown scenario {', '.join(unknown)}; known: {', '.join(scenario_names())}")


def config(opts: Options) -> dict[str, Any]:
    """The options as the report shows them (the database URL may hold a password: left out)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items() if k != "database_url"}


def begin_report(opts: Options, argv: list[str] | None, started: dt.datetime) -> Report:
    return {
        "date": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "command": " ".join([".venv/bin/python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(),
        "code": git_info(),
        "config": config(opts),
        "background_busy_pct": background_busy(opts),
    }


def _measure(opts: Options, *, server: Server, db: Database, report: Report, stamp: str, phase: Phases) -> None:
    """Seed, warm up, the load scenarios, then each enabled measurement (results into `report`)."""
    tmp = Path(tempfile.mkdtemp(prefix="quits-bench-"))
    try:
        fixture = seed_fixture(server.base, opts.groups, opts.members)
        phase("seed")
        warm_up(opts, server=server, db=db, tmp=tmp, fixture=fixture, stamp=stamp)
        phase("warm-up")
        report["scenarios"] = run_load(
            opts, server=server, db=db, tmp=tmp, fixture=fixture, stamp=stamp, scenarios=LOAD_SCENARIOS
        )
        phase("scenarios")
        ctx = Context(opts=opts, server=server, db=db, tmp=tmp, fixture=fixture, stamp=stamp)
        for m in MEASUREMENTS:
            if m.enabled(opts):
                report[m.key] = m.run(ctx)
                phase(m.key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ratios(report: Report) -> dict[str, RatioRow]:
    rows = scenario_ratios(LOAD_SCENARIOS, report["scenarios"], report.get("pgbench"))
    for m in MEASUREMENTS:
        if m.ratios is not None and report.get(m.key):
            rows.update(m.ratios(report[m.key]))
    return rows


def run_bench(opts: Options, argv: list[str] | None) -> int:
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    phase = Phases()
    report = begin_report(opts, argv, started)
    phase("quiet check")
    db = setup_database(opts)
    report["postgres"] = postgres_report(db)
    phase("database")
    try:
        server = start_server(opts, db=db, log_path=opts.out / f"server-{stamp}.log")
    except BaseException:
        release_database(db)
        raise
    report["server"] = {
        "command": " ".join(["python", *server.command[1:]]),
        "workers": [w.pid for w in server.workers],
    }
    monitor = MemoryMonitor(server.workers)
    monitor.start()
    phase("server start")
    try:
        _measure(opts, server=server, db=db, report=report, stamp=stamp, phase=phase)
    finally:
        monitor.finish()
        stop_server(server)
        release_database(db)
    report["memory"] = monitor.report()
    report["ratios"] = ratios(report)
    phase("teardown")
    report["phases"] = {**phase.seconds, "total": round(time.monotonic() - T0, 1)}
    text = render(report, MEASUREMENTS)
    print(text)
    write_results(opts.out, prefix="", stamp=stamp, report=report, text=text)
    return 0


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    check_only(opts)
    ensure_tools(opts)
    opts.out.mkdir(parents=True, exist_ok=True)
    if opts.ab:
        from bench.ab import run_ab

        return run_ab(opts, argv)
    return run_bench(opts, argv)
