"""The service under test: uvicorn start and stop, and what is sampled while it runs (memory, CPU,
database sessions, connections per worker)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import importlib.util
import os
import re
import resource
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from bench import ROOT, appref, log
from bench.database import Database
from bench.machine import busy_seconds, cpu_by_pid
from bench.options import Options

if TYPE_CHECKING:
    import psutil

HEALTHY_WITHIN_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@dataclass(kw_only=True)
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    command: list[str]
    env: dict[str, str]
    log_path: Path
    workers: list[psutil.Process] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def uvicorn_command(opts: Options, port: int) -> list[str]:
    cmd = [sys.executable, "-m", "uvicorn", opts.app, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(opts.workers), "--no-access-log", "--log-level", "warning"]
    if _importable("uvloop"):
        cmd += ["--loop", "uvloop"]
    if _importable("httptools"):
        cmd += ["--http", "httptools"]
    return cmd


def server_env(opts: Options, db: Database) -> dict[str, str]:
    """The server's settings (on top of the inherited environment)."""
    return {
        "DATABASE_URL": db.dsn(),
        "MIGRATE_ON_STARTUP": "false",
        "DB_POOL_SIZE": str(opts.pool_size),
        "DB_MAX_OVERFLOW": str(opts.max_overflow),
        "DB_WRITE_POOL_SIZE": str(opts.write_pool_size),
        "ENABLE_TEST_HOOKS": "false",
        **opts.server_env_dict(),
    }


def start_server(opts: Options, *, db: Database, log_path: Path, tree: Path = ROOT) -> Server:
    """uvicorn serving the app of `tree` (its working directory and PYTHONPATH), once every worker answers."""
    port = free_port()
    cmd = uvicorn_command(opts, port)
    env = server_env(opts, db)
    log(f"starting {' '.join(shlex.quote(c) for c in cmd[1:])}" + ("" if tree == ROOT else f" in {tree}"))
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=tree, env=appref.tree_env(tree, env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(proc=proc, port=port, command=cmd, env=env, log_path=log_path)
    try:
        _wait_healthy(server, opts.workers)
    except BaseException:
        stop_server(server)
        raise
    return server


def _health(port: int, timeout: float) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", "/health")
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def _workers(server: Server, count: int) -> list[psutil.Process]:
    import psutil

    main_proc = psutil.Process(server.proc.pid)
    if count == 1:
        return [main_proc]  # uvicorn serves in its own process
    return [k for k in main_proc.children() if "spawn_main" in " ".join(k.cmdline())]


def _wait_healthy(server: Server, workers: int) -> None:
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {server.proc.returncode}; see {server.log_path}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if _health(server.port, 2) == 200:
                kids = _workers(server, workers)
                if len(kids) >= workers:
                    server.workers = kids
                    # every worker answers once it is up: a few more health checks on new connections
                    for _ in range(4 * workers):
                        _health(server.port, 5)
                    return
        time.sleep(0.2)
    raise RuntimeError(f"uvicorn did not become healthy in {HEALTHY_WITHIN_S} s; see {server.log_path}")


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

    def __init__(self, workers: list[psutil.Process]) -> None:
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
                    self.peak[w.pid] = max(self.peak[w.pid], int(w.memory_info().rss))

    def finish(self) -> None:
        self._stop_event.set()
        self.join()
        for w in self.workers:
            with contextlib.suppress(OSError):
                m = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{w.pid}/status").read_text())
                if m:
                    self.hwm[w.pid] = int(m.group(1)) * 1024

    def report(self) -> dict[str, Any]:
        return {
            "workers": [
                {
                    "pid": pid,
                    "peak_rss_mib": round(self.peak.get(pid, 0) / 2**20, 1),
                    "vmhwm_mib": round(self.hwm.get(pid, 0) / 2**20, 1),
                }
                for pid in self.peak
            ]
        }


class _CpuSnapshot(NamedTuple):
    at: float
    machine_busy: float
    children: float  # this script's reaped children: wrk, pgbench, py-spy
    workers: dict[int, float]
    postgres: dict[int, float]


class CpuMeter:
    """CPU used by each part of the set-up over an interval, in % of one core.

    load generator: this script's reaped children (wrk or pgbench, and py-spy while profiling);
    workers: the uvicorn workers; postgres: the server's processes (a backend that exits during the
    interval is charged to the postmaster's reaped-children time); other: everything else on the machine
    (the uvicorn supervisor, this script, and whatever else runs: it should be near zero)."""

    def __init__(self, server: Server | None, db: Database) -> None:
        self.server, self.db = server, db
        self.begin: _CpuSnapshot | None = None

    def _snapshot(self) -> _CpuSnapshot:
        import psutil

        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return _CpuSnapshot(
            at=time.monotonic(),
            machine_busy=busy_seconds(psutil.cpu_times()),
            children=kids.ru_utime + kids.ru_stime,
            workers=cpu_by_pid(self.server.workers if self.server else []),
            postgres=self.db.cpu_seconds(),
        )

    def start(self) -> None:
        self.begin = self._snapshot()

    def stop(self) -> dict[str, Any]:
        b = self.begin
        if b is None:
            raise RuntimeError("CpuMeter.stop() before start()")
        e = self._snapshot()
        wall = e.at - b.at
        busy = e.machine_busy - b.machine_busy
        gen = e.children - b.children
        workers = sum(e.workers.values()) - sum(b.workers.values())
        # a backend that exits moves from the live children to the postmaster's reaped-children time
        pg = sum(e.postgres.values()) - sum(b.postgres.values())
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
    SESSIONS = "SELECT sessions FROM pg_stat_database WHERE datname = $1"  # PostgreSQL 14+
    KEYS = ("running", "lock", "io_wal", "other_wait", "idle_in_tx", "idle")

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
        try:
            try:
                first = await conn.fetchval(self.SESSIONS, self.database)
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
                self.new_sessions = int(await conn.fetchval(self.SESSIONS, self.database)) - int(first)
        finally:
            await conn.close()

    def finish(self) -> dict[str, Any]:
        self._stop_event.set()
        self.join()
        out: dict[str, Any] = {k: round(self.totals[k] / max(1, self.samples), 1) for k in self.KEYS}
        out["new_sessions"] = self.new_sessions
        return out


def connections_per_worker(server: Server, expected: int, timeout: float = 3.0) -> list[int]:
    """Established client connections held by each worker, once all `expected` are up (or at the timeout);
    -1 for a worker whose connections could not be read."""
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
