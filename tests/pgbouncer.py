"""Debian's PgBouncer in transaction mode, started by a test in a temporary directory (docs/scaling.md).

`running(db_url)` starts /usr/sbin/pgbouncer (pool_mode = transaction, trust authentication with an
auth file naming the project's roles, 127.0.0.1 and a free port) in front of the server db_url names,
whether a Unix socket (the embedded server) or TCP (CI's PostgreSQL 15), and yields its address. Every
database of that server is reachable through it under its own name.

Run as root, PgBouncer refuses to start unless told which user to become: it becomes the owner of the
embedded server's socket directory (which only that user may enter), or `nobody` for a TCP server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from app.infra.roles import APP_ROLE, OWNER_ROLE
from tests.live import free_port

PGBOUNCER = Path(os.environ.get("PGBOUNCER", "/usr/sbin/pgbouncer"))
POOL_SIZE = 20  # server connections per database and role: fewer than the clients, so they are shared
STARTUP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Bouncer:
    host: str
    port: int
    log_path: Path

    def url(self, direct: URL) -> URL:
        """direct's role and database, through this PgBouncer."""
        query = {k: v for k, v in direct.query.items() if k not in ("host", "port")}
        return direct.set(host=self.host, port=self.port, query=query)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


current: Bouncer | None = None  # the one the concurrency suite runs through (tests/concurrency/conftest.py)


def available() -> bool:
    return PGBOUNCER.is_file() and os.access(PGBOUNCER, os.X_OK)


def _server_address(url: URL) -> tuple[str, int, str | None]:
    """(host or socket directory, port, the socket directory's owner when it is one)."""
    host = str(url.query.get("host") or url.host or "127.0.0.1")
    port = int(str(url.query.get("port") or url.port or 5432))
    owner = pwd.getpwuid(os.stat(host).st_uid).pw_name if host.startswith("/") else None
    return host, port, owner


def _ini(workdir: Path, *, host: str, port: int, listen_port: int) -> str:
    return f"""[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir / "users.txt"}
pool_mode = transaction
default_pool_size = {POOL_SIZE}
max_client_conn = 1000
logfile = {workdir / "pgbouncer.log"}
pidfile = {workdir / "pgbouncer.pid"}
"""


def _wait_until_listening(process: subprocess.Popen[bytes], bouncer: Bouncer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {process.returncode}:\n{bouncer.log()}")
        try:
            with socket.create_connection((bouncer.host, bouncer.port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not listen within {STARTUP_TIMEOUT_S}s:\n{bouncer.log()}") from None
            time.sleep(0.05)


@contextmanager
def running(db_url: URL) -> Iterator[Bouncer]:
    host, port, socket_owner = _server_address(db_url)
    workdir = Path(tempfile.mkdtemp(prefix="quits-pgbouncer-"))
    listen_port = free_port()
    (workdir / "pgbouncer.ini").write_text(_ini(workdir, host=host, port=port, listen_port=listen_port))
    users = {APP_ROLE, OWNER_ROLE, str(db_url.username or "postgres")}
    (workdir / "users.txt").write_text("".join(f'"{user}" ""\n' for user in sorted(users)))
    cmd = [str(PGBOUNCER)]
    if os.geteuid() == 0:  # PgBouncer will not run as root
        user = socket_owner or "nobody"
        cmd += ["-u", user]
        pw = pwd.getpwnam(user)
        for path in (workdir, *workdir.iterdir()):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    cmd.append(str(workdir / "pgbouncer.ini"))
    bouncer = Bouncer("127.0.0.1", listen_port, workdir / "pgbouncer.log")
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_until_listening(process, bouncer)
        yield bouncer
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # immediate shutdown: the servers using it have stopped
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)
