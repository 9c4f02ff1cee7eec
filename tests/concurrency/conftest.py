"""The concurrency suite runs against the REAL service: `uvicorn app.main:app --workers 2`.

One server per session (two worker processes, so requests race across processes and connection
pools, not inside one event loop). Clients are real parallel clients: threads, each with its own
httpx.Client, released together by a barrier (helpers.storm).

The server log is captured to a temporary file and checked after every test and at the end:
no tracebacks, no ERROR lines, no 500 responses, no "deadlock", and no retried 40001/40P01
unless the test injected that fault itself (app.tx logs retries as WARNING "transient conflict
<sqlstate>, attempt n of m": those are expected, errors are not). At the end PostgreSQL's own
deadlock counter for the test database must not have moved.

The suite uses a database of its own (quits_test_concurrency on the embedded server, or
TEST_DATABASE_URL when set), so it never races another suite's per-test TRUNCATE.

With QUITS_TEST_VIA_PGBOUNCER=1 (tests/pooler/test_pgbouncer.py runs the suite so), every server the
suite starts reaches PostgreSQL through a PgBouncer in transaction mode that the suite starts itself
(tests/pgbouncer.py), with DB_TRANSACTION_POOLER=true and the revocation listener on the direct URL; the
suite then uses a database of its own (quits_test_pgbouncer, or TEST_DATABASE_URL's name + _pgbouncer).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import URL

from app.infra.db import embedded_socket_url, ensure_database, normalise_url
from tests import pgbouncer
from tests.concurrency.helpers import Live, Server, log_problems
from tests.dbutil import app_url, dsn, owner_url, prepare_test_database, run_sql

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY_DATABASE = "quits_test_concurrency"
STARTUP_TIMEOUT_S = 30.0
VIA_PGBOUNCER = os.environ.get("QUITS_TEST_VIA_PGBOUNCER") == "1"


@pytest.fixture(scope="session")
def db_url() -> URL:
    """Overrides the root fixture (so the root `clean_db` empties this suite's own database)."""
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        url = normalise_url(explicit)
        if VIA_PGBOUNCER:
            url = url.set(database=f"{url.database}_pgbouncer")
            asyncio.run(ensure_database(url))
    else:
        name = "quits_test_pgbouncer" if VIA_PGBOUNCER else CONCURRENCY_DATABASE
        url = embedded_socket_url(PROJECT_ROOT / ".data" / "postgres", name)
        asyncio.run(ensure_database(url))
    prepare_test_database(url)
    return url


@pytest.fixture(scope="session", autouse=True)
def via_pgbouncer(db_url: URL) -> Iterator[pgbouncer.Bouncer | None]:
    """With QUITS_TEST_VIA_PGBOUNCER=1, a PgBouncer in transaction mode in front of the suite's server."""
    if not VIA_PGBOUNCER:
        yield None
        return
    if not pgbouncer.available():
        pytest.fail(f"QUITS_TEST_VIA_PGBOUNCER=1 but there is no {pgbouncer.PGBOUNCER} (apt-get install pgbouncer)")
    with pgbouncer.running(db_url) as bouncer:
        # Kept in tests.pgbouncer, one module for everyone: test modules that import this conftest by its
        # package name (test_recurring_workers: launch) get a second copy of it, with globals of its own.
        pgbouncer.current = bouncer
        try:
            yield bouncer
        finally:
            pgbouncer.current = None


def service_env(db_url: URL) -> dict[str, str]:
    """The service's database settings: direct, or through the suite's PgBouncer (transaction mode)."""
    app, bouncer = app_url(db_url), pgbouncer.current
    assert bouncer is not None or not VIA_PGBOUNCER, "QUITS_TEST_VIA_PGBOUNCER=1 but no PgBouncer is running"
    if bouncer is None:
        return {"DATABASE_URL": dsn(app)}
    return {"DATABASE_URL": dsn(bouncer.url(app)), "DB_TRANSACTION_POOLER": "true", "DATABASE_DIRECT_URL": dsn(app)}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_deadlocks(url: URL) -> int:
    rows = run_sql(url, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
    return int(rows[0]["deadlocks"] or 0)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the server's own process group (start_new_session)
        process.wait(timeout=5)


@contextmanager
def launch(db_url: URL, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """uvicorn app.main:app --workers 2 on a free port, against the test database, test hooks on; stopped
    (SIGTERM) on exit. The caller checks its log."""
    port = _free_port()
    log_fd, log_name = tempfile.mkstemp(prefix="quits-concurrency-server-", suffix=".log")
    os.close(log_fd)
    env = {
        **os.environ,
        **service_env(db_url),
        "MIGRATION_DATABASE_URL": owner_url(db_url).render_as_string(hide_password=False),
        "MIGRATE_ON_STARTUP": "false",
        "ENABLE_TEST_HOOKS": "true",
        "DB_POOL_SIZE": "20",
        "DB_MAX_OVERFLOW": "5",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--workers",
        "2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with open(log_name, "ab") as log:  # O_APPEND: both workers append whole lines to one file
        process = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    srv = Server(f"http://127.0.0.1:{port}", Path(log_name), process)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{srv.log_text()}")
            try:
                if httpx.get(srv.base_url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server was not healthy within {STARTUP_TIMEOUT_S}s:\n{srv.log_text()}")
            time.sleep(0.1)
        yield srv
    finally:
        _stop(process)
    assert process.returncode == 0, f"the server exited with {process.returncode}:\n{srv.log_text()[-5000:]}"


@pytest.fixture(scope="session")
def server(db_url: URL) -> Iterator[Server]:
    """The suite's server. Its recurring schedulers are off: tests/concurrency/test_recurring_workers.py
    starts servers of its own to run them, and needs rules that no other server touches meanwhile."""
    deadlocks_before = _pg_deadlocks(db_url)
    with launch(db_url, {"RECURRING_SCHEDULER": "false"}) as srv:
        yield srv
    log_name = str(srv.log_path)
    # Whole-session check: injected 40001/40P01 and expected 503s are allowed; nothing else.
    problems = log_problems(srv.log_text(), allowed_conflicts={"40001", "40P01"}, allowed_5xx={503})
    assert not problems, f"server log {log_name}:\n" + "\n".join(problems)
    # Backends flush their statistics as they exit; give the pool's backends a moment.
    deadlocks_after = _pg_deadlocks(db_url)
    for _ in range(20):
        if deadlocks_after != deadlocks_before:
            break
        time.sleep(0.05)
        deadlocks_after = _pg_deadlocks(db_url)
    assert deadlocks_after == deadlocks_before, (
        f"PostgreSQL detected {deadlocks_after - deadlocks_before} deadlock(s) in {db_url.database}"
    )
    Path(log_name).unlink()  # a clean log is not worth keeping; a failing one stays for inspection


@pytest.fixture
def live(server: Server, clean_db: URL) -> Iterator[Live]:
    """The server against empty tables; after the test, its slice of the server log must be clean."""
    assert server.process.poll() is None, "the server died:\n" + server.log_text()[-5000:]
    live = Live(server, clean_db, server.log_size())
    yield live
    problems = log_problems(live.log(), live.allowed_conflicts, live.allowed_5xx)
    assert not problems, (
        f"server log of this test ({server.log_path}):\n" + "\n".join(problems) + "\n\n" + live.log()[-5000:]
    )
