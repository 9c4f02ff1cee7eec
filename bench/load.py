"""Load with wrk: one run of a request builder of bench/scenario.lua, and the loop over the scenario table."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import LUA, log
from bench.database import Database
from bench.model import Fixture, Group, LoadScenario, Pair, Placement, Result
from bench.options import Options
from bench.server import CpuMeter, PgActivity, Server, connections_per_worker

MAX_WRK_STARTS = 6  # attempts at an even spread of the connections over the workers
WARMUP_BUILDER = "expense"


def lua_literal(value: object) -> str:
    """A Python value as a Lua table constructor / literal (keys must be Lua names)."""
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}={lua_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "{" + ",".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


@dataclass(frozen=True, kw_only=True)
class WrkJob:
    """What one wrk run sends: builder and its params, a tag unique per run (idempotency keys), the groups."""

    builder: str
    tag: str
    duration: float
    groups: list[Group]
    pairs: list[Pair] | None = None
    params: Mapping[str, str] | None = None

    def config(self) -> str:
        cfg = {
            "mode": self.builder,
            "tag": self.tag,
            "params": dict(self.params or {}),
            "groups": [{"id": g["id"], "members": g["members"]} for g in self.groups],
            "pairs": [
                {"group": p["group"], "from": p["from"], "to": p["to"], "token": p["token"]} for p in self.pairs or []
            ],
        }
        return "return " + lua_literal(cfg) + "\n"


@dataclass(kw_only=True)
class _Started:
    proc: subprocess.Popen[bytes]
    meter: CpuMeter
    activity: PgActivity
    per_worker: list[int]
    attempt: int


def _wrk_command(opts: Options, *, server: Server, job: WrkJob, cfg_path: Path) -> list[str]:
    return [
        shutil.which("wrk") or "wrk",
        *("-t", str(opts.wrk_threads), "-c", str(opts.clients)),
        *("-d", f"{max(1, round(job.duration))}s", "--timeout", "10s"),
        *("-s", str(LUA), server.base, "--", str(cfg_path)),
    ]


def _start_balanced(opts: Options, *, server: Server, db: Database, cmd: list[str], env: dict[str, str]) -> _Started:
    """Start wrk with the samplers. The workers share one listening socket and whichever wakes first may
    accept most of the 32 connections at once; one worker then saturates its core while the other idles.
    Unless told otherwise, restart wrk until every worker holds at least 2/3 of its fair share."""
    fair = opts.clients / len(server.workers)
    for attempt in range(1, MAX_WRK_STARTS + 1):
        activity = PgActivity(db.dsn(), db.name)
        activity.start()
        meter = CpuMeter(server, db)
        meter.start()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        per_worker = connections_per_worker(server, opts.clients)
        balanced = min(per_worker, default=0) >= math.ceil(2 * fair / 3) or -1 in per_worker
        if balanced or opts.allow_unbalanced or attempt == MAX_WRK_STARTS:
            return _Started(proc=proc, meter=meter, activity=activity, per_worker=per_worker, attempt=attempt)
        proc.terminate()
        proc.communicate()
        activity.finish()
        log(f"  connections per worker {per_worker}: unbalanced, restarting wrk")
    raise AssertionError("unreachable")


def _figures(raw: dict[str, Any], cpu: dict[str, Any]) -> Result:
    """wrk's summary (written by scenario.lua's done()) as the report's figures."""
    secs = raw["duration_us"] / 1e6
    statuses = {int(k): v for k, v in raw["statuses"].items()}
    socket_errors = sum(raw["socket_errors"].values())
    non2xx = sum(v for k, v in statuses.items() if not 200 <= k < 300)
    if sum(statuses.values()) != raw["requests"]:
        log(f"warning: {sum(statuses.values())} statuses counted for {raw['requests']} requests")
    non2xx = max(non2xx, raw["status_over_399"])
    return {
        "requests": raw["requests"],
        "seconds": round(secs, 2),
        "rps": round(raw["requests"] / secs, 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": non2xx + socket_errors,
        "statuses": statuses,
        "socket_errors": raw["socket_errors"],
        "error_samples": raw["samples"][:3],
        "cpu": cpu,
        "cpu_ms_per_request": {
            k: round(1000 * cpu["seconds"][k] / max(1, raw["requests"]), 3) for k in ("workers", "postgres")
        },
    }


def run_wrk(
    opts: Options, *, server: Server, db: Database, tmp: Path, job: WrkJob, during: Callable[[], None] | None = None
) -> Result:
    """One wrk run of `job`, with CPU and database sessions sampled; `during` runs once wrk is going."""
    cfg_path = tmp / f"{job.tag}.lua"
    cfg_path.write_text(job.config())
    out = tmp / f"{job.tag}.json"
    env = {**os.environ, "BENCH_WRK_OUT": str(out)}
    cmd = _wrk_command(opts, server=server, job=job, cfg_path=cfg_path)
    started = _start_balanced(opts, server=server, db=db, cmd=cmd, env=env)
    if during is not None:
        during()
    stdout = started.proc.communicate()[0].decode()
    cpu = started.meter.stop()
    sessions = started.activity.finish()
    if started.proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({started.proc.returncode}):\n{stdout}")
    result = _figures(json.loads(out.read_text()), cpu)
    result["db_sessions"] = sessions
    result["connections_per_worker"] = started.per_worker
    result["wrk_starts"] = started.attempt
    return result


def warm_up(opts: Options, *, server: Server, db: Database, tmp: Path, fixture: Fixture, stamp: str) -> None:
    if opts.warmup:
        log(f"warm-up {opts.warmup} s")
        job = WrkJob(builder=WARMUP_BUILDER, tag=f"warmup-{stamp}", duration=opts.warmup, groups=fixture.spread)
        run_wrk(opts, server=server, db=db, tmp=tmp, job=job)


def _check_pairs(result: Result, pairs: list[Pair]) -> None:
    """Each pair may take up to its capacity in 0.01 steps: warn when a run came near it."""
    per_pair = result["requests"] / max(1, len(pairs))
    cap = min(p["capacity_minor"] for p in pairs)
    if per_pair * 1.5 > cap:
        log(f"  warning: ~{per_pair:.0f} settlements per pair vs capacity {cap}")


def _log_result(x: Result) -> None:
    log(
        f"  {x['rps']:.0f} req/s, p50 {x['p50_ms']:.1f} ms, p99 {x['p99_ms']:.1f} ms, "
        f"errors {x['errors']}, cpu {x['cpu']}"
    )


def run_scenario(
    opts: Options, *, server: Server, db: Database, tmp: Path, fixture: Fixture, stamp: str, scenario: LoadScenario
) -> list[dict[str, Any]]:
    """The selected placements of one scenario: [{"name", "placement", "result"}, ...]."""
    if not scenario.any_selected(opts.only):
        return []
    pairs: Mapping[Placement, list[Pair]] = scenario.prepare(server.base, fixture) if scenario.prepare else {}
    runs = []
    for placement in scenario.placements:
        if not scenario.selected(opts.only, placement):
            continue
        log(f"{scenario.name} {placement}: {opts.duration} s")
        job = WrkJob(
            builder=scenario.builder,
            tag=f"{scenario.name}-{placement}-{stamp}",  # unique per scenario: the idempotency keys derive from it
            duration=opts.duration,
            groups=fixture.groups(placement),
            pairs=pairs.get(placement),
            params=scenario.params,
        )
        result = run_wrk(opts, server=server, db=db, tmp=tmp, job=job)
        _log_result(result)
        if pairs.get(placement):
            _check_pairs(result, pairs[placement])
        runs.append({"name": scenario.name, "placement": placement, "result": result})
    return runs


def run_load(
    opts: Options,
    *,
    server: Server,
    db: Database,
    tmp: Path,
    fixture: Fixture,
    stamp: str,
    scenarios: tuple[LoadScenario, ...],
) -> list[dict[str, Any]]:
    """Every selected scenario of the table, in order."""
    runs: list[dict[str, Any]] = []
    for s in scenarios:
        runs += run_scenario(opts, server=server, db=db, tmp=tmp, fixture=fixture, stamp=stamp, scenario=s)
    return runs
