"""Prometheus metrics, added up over every worker of a server (prometheus_client's multi-process mode).

Each process writes its values to files in one directory, and `GET /metrics`, whichever worker serves
it, adds up the files of all of them. The directory must be known before the first metric exists and
be the same for every worker of a server:

- PROMETHEUS_MULTIPROC_DIR set (environment or .env): used as it is. Set it in the environment of the
  process that starts the workers (the workers inherit it) and empty it before each start: files left
  by an earlier run would be added to the new counts (prometheus_client's rule).
- unset: `<base>/quits-metrics-<pid>-<start>`, where base is /dev/shm (memory: the files are written
  on every request, and a disk-backed directory would have the kernel write them back every few
  seconds) or, without it, the temporary directory; pid and start time identify the server process:
  the uvicorn supervisor for `uvicorn --workers N` (and `--reload`), whose workers are its
  multiprocessing children, or the process itself when it serves alone. uvicorn's supervisor never
  imports the app, so the app cannot put a variable into its environment; the workers agree on the
  directory by naming it after their common parent instead. Each server start gets a new directory,
  and the directories of servers no longer running are removed when a server starts.

Gauges (connection pools) count only live processes: a dead worker's gauge files are dropped at every
scrape. Counters and histograms keep a dead worker's counts, so totals never go backwards.

Per request, recording is a dict lookup, a float add and an integer increment in the worker's memory
(no label strings, no file writes); publish() writes the totals to the histogram's files every
metrics_interval_s, and whenever the worker serves a scrape or stops. The histogram's _count is the
request count, so there is no separate counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import re
import shutil
import stat
import tempfile
from bisect import bisect_left
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg
    from prometheus_client import Gauge, Histogram
    from sqlalchemy.ext.asyncio import AsyncEngine

    from app.infra.config import Settings

logger = logging.getLogger("quits.metrics")

ENV = "PROMETHEUS_MULTIPROC_DIR"
DIR_PREFIX = "quits-metrics-"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_DIR_NAME = re.compile(re.escape(DIR_PREFIX) + r"(\d+)-(\d*)")
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db")


# ---- where the files live ------------------------------------------------------------------------


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux /proc), "" where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def server_identity() -> tuple[int, str]:
    """(pid, start time) of the process that owns this server: the supervisor of a multi-worker uvicorn
    (this process's multiprocessing parent), else this process."""
    parent = multiprocessing.parent_process()
    pid = parent.pid if parent is not None and parent.pid is not None else os.getpid()
    return pid, _start_time(pid)


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not start or _start_time(pid) == start


def _remove_stale_dirs(parent: Path) -> None:
    """Directories of servers that no longer run (their pid is gone or belongs to a newer process)."""
    for path in parent.glob(DIR_PREFIX + "*"):
        match = _DIR_NAME.fullmatch(path.name)
        if match is None or _alive(int(match.group(1)), match.group(2)):
            continue
        with contextlib.suppress(OSError):
            if path.lstat().st_uid == os.getuid():
                shutil.rmtree(path, ignore_errors=True)


def _private_dir(path: Path) -> Path:
    """Create path (mode 0700) or accept it if it is already a directory of this user, never a symlink."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RuntimeError(f"{path} is not a directory owned by this user; set PROMETHEUS_MULTIPROC_DIR")
    return path


def base_dir() -> Path:
    """Where per-server directories go: /dev/shm (memory) when it is there and writable, else the temp dir."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else Path(tempfile.gettempdir())


def choose_dir(configured: Path | None) -> Path:
    if configured is not None:
        return _private_dir(configured)
    parent = base_dir()
    _remove_stale_dirs(parent)
    pid, start = server_identity()
    return _private_dir(parent / f"{DIR_PREFIX}{pid}-{start}")


def _drop_dead_gauges(directory: Path) -> None:
    """Gauges add up live processes only: forget the gauge files of workers that have exited."""
    from prometheus_client import multiprocess

    for path in directory.glob("gauge_live*.db"):
        match = _LIVE_GAUGE_FILE.fullmatch(path.name)
        if match is not None and not _alive(int(match.group(1)), ""):
            multiprocess.mark_process_dead(int(match.group(1)), str(directory))  # type: ignore[no-untyped-call]


# ---- the metrics ---------------------------------------------------------------------------------


class Recorder:
    """Every metric of the service. Created once per process; values go to this process's files."""

    def __init__(self, directory: Path) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.directory = directory
        # One histogram per (method, route template, status): its _count is the request count, so a request
        # costs one observation (two file writes) and nothing else.
        self.latency = Histogram(
            "quits_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response, by method, route template and status "
            "(_count: the number of requests)",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.replays = Counter(
            "quits_idempotent_replays", "Responses replayed for a repeated Idempotency-Key", ["route"], registry=None
        )
        self.retries = Counter(
            "quits_db_retries", "Transactions retried after a transient conflict, by SQLSTATE", ["sqlstate"],
            registry=None,
        )
        self.retries_exhausted = Counter(
            "quits_db_retries_exhausted", "Writes that still conflicted after the last retry (503)", registry=None
        )
        self.lock_timeouts = Counter(
            "quits_db_lock_timeouts", "Row-lock waits that hit lock_timeout (SQLSTATE 55P03)", registry=None
        )
        self.gate_waits = Counter(
            "quits_gate_waits", "Writes that queued at a full per-group gate", ["gate"], registry=None
        )
        self.gate_timeouts = Counter(
            "quits_gate_timeouts", "Writes that waited lock_timeout at a gate and went on without it", ["gate"],
            registry=None,
        )
        self.pool = Gauge(
            "quits_db_pool_connections",
            "Database connections by pool (engine: reads and multi-statement writes; write: the one-statement "
            "writes) and state (in_use, idle, max), summed over live workers",
            ["pool", "state"],
            multiprocess_mode="livesum",
            registry=None,
        )
        self._http: dict[tuple[str, str, int], Histogram] = {}
        # Not yet published, per (method, route, status): [sum of seconds, count per bucket..., count over all].
        self._pending: dict[tuple[str, str, int], list[float]] = {}

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        acc = self._pending.get(key)
        if acc is None:
            acc = self._pending[key] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        acc[0] += seconds
        acc[bisect_left(LATENCY_BUCKETS, seconds) + 1] += 1  # the first bucket whose bound is >= seconds

    def _flush_requests(self) -> None:
        """Add the pending counts to the histogram, as observe() would have one by one."""
        pending, self._pending = self._pending, {}
        for (method, route, status), acc in pending.items():
            child = self._http.get((method, route, status))
            if child is None:
                label = method if method in METHODS else "OTHER"
                child = self._http[(method, route, status)] = self.latency.labels(label, route, status)
            child._sum.inc(acc[0])
            for bucket, count in zip(child._buckets, acc[1:], strict=True):
                if count:
                    bucket.inc(count)

    def publish(self, *, engine: AsyncEngine, write_pool: asyncpg.Pool, settings: Settings) -> None:
        """Write this worker's pending request counts and its pool sizes to the shared files."""
        self._flush_requests()
        self.pools(engine=engine, write_pool=write_pool, settings=settings)

    def pools(self, *, engine: AsyncEngine, write_pool: asyncpg.Pool, settings: Settings) -> None:
        sql_pool: Any = engine.pool
        in_use, idle = int(sql_pool.checkedout()), int(sql_pool.checkedin())
        self._set_pool("engine", in_use, idle, settings.db_pool_size + settings.db_max_overflow)
        size, free = write_pool.get_size(), write_pool.get_idle_size()
        self._set_pool("write", size - free, free, write_pool.get_max_size())

    def _set_pool(self, pool: str, in_use: int, idle: int, most: int) -> None:
        gauge: Gauge = self.pool
        gauge.labels(pool, "in_use").set(in_use)
        gauge.labels(pool, "idle").set(idle)
        gauge.labels(pool, "max").set(most)

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        _drop_dead_gauges(self.directory)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.directory))  # type: ignore[no-untyped-call]
        return generate_latest(registry)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_RECORDER: Recorder | None = None


def setup(settings: Settings) -> Recorder | None:
    """The process's recorder (created on first use), or None when metrics are off."""
    global _RECORDER
    if not settings.metrics:
        return None
    if _RECORDER is None:
        directory = choose_dir(settings.prometheus_multiproc_dir or _env_dir())
        os.environ[ENV] = str(directory)
        from prometheus_client import values

        if not getattr(values.ValueClass, "_multiprocess", False):
            # prometheus_client picks its value class when first imported; it was imported before the
            # directory was set, so pick again (metrics read values.ValueClass when they are created).
            values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        _RECORDER = Recorder(directory)
        logger.info("metrics: prometheus_client multi-process files in %s", directory)
    return _RECORDER


def _env_dir() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value else None


# ---- events from below the edge (no-ops when metrics are off) -------------------------------------


def count_retry(sqlstate: str) -> None:
    if _RECORDER is not None:
        _RECORDER.retries.labels(sqlstate).inc()


def count_lock_timeout() -> None:
    if _RECORDER is not None:
        _RECORDER.lock_timeouts.inc()


def count_retries_exhausted() -> None:
    if _RECORDER is not None:
        _RECORDER.retries_exhausted.inc()


def count_gate_wait(gate: str) -> None:
    if _RECORDER is not None:
        _RECORDER.gate_waits.labels(gate).inc()


def count_gate_timeout(gate: str) -> None:
    if _RECORDER is not None:
        _RECORDER.gate_timeouts.labels(gate).inc()


def count_replay(route: str) -> None:
    if _RECORDER is not None:
        _RECORDER.replays.labels(route).inc()


async def publish_forever(*, engine: AsyncEngine, write_pool: asyncpg.Pool, settings: Settings) -> None:
    """Every metrics_interval_s, and once more when cancelled (the worker stops), publish this worker's
    counts and pool sizes."""
    recorder = _RECORDER
    if recorder is None:
        return
    try:
        while True:
            try:
                recorder.publish(engine=engine, write_pool=write_pool, settings=settings)
            except Exception:  # housekeeping: never let a publishing error end the loop
                logger.exception("publishing the metrics failed")
            await asyncio.sleep(settings.metrics_interval_s)
    finally:
        recorder._flush_requests()
