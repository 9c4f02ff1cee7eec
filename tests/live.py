"""A real `uvicorn app.main:app` for the tests that need one: keep-alive connections, several workers,
the server's own log. Each server is a subprocess with its own log file, stopped by the fixture."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy.engine import URL

from app.infra.config import PROJECT_ROOT
from tests.dbutil import dsn

STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveServer:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def server_env(db_url: URL | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the tests' own process may have one: servers choose theirs
    env.update(MIGRATE_ON_STARTUP="false", ENABLE_TEST_HOOKS="true", PYTHONUNBUFFERED="1")
    if db_url is not None:
        env["DATABASE_URL"] = dsn(db_url)
    env.update(extra)
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextmanager
def live_server(env: dict[str, str], *, workers: int = 1, args: tuple[str, ...] = ()) -> Iterator[LiveServer]:
    """uvicorn on a free port with env; yields once GET /health answers (200 or 503), stops it after."""
    port = free_port()
    fd, name = tempfile.mkstemp(prefix="quits-live-", suffix=".log")
    os.close(fd)
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--workers", str(workers), *args]
    with open(name, "ab") as log:
        process = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    server = LiveServer(port, process, Path(name))
    try:
        _wait_until_up(server)
        yield server
    finally:
        _stop(process)
    Path(name).unlink(missing_ok=True)


def _wait_until_up(server: LiveServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.base_url + "/health", timeout=3).status_code in (200, 503):
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start within {STARTUP_TIMEOUT_S}s:\n{server.log()}")
        time.sleep(0.1)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class KeepAlive:
    """One HTTP/1.1 connection, reused for every request: `local_port` must never change (a server that
    closed the connection after a response would make the next request fail or reconnect)."""

    def __init__(self, server: LiveServer, timeout_s: float = 30) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout_s)
        self.local_port: int | None = None

    def request(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> Reply:
        body = orjson.dumps(json) if json is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})} if body is not None else headers or {}
        self.conn.request(method, path, body=body, headers=all_headers)
        if self.local_port is None:
            assert self.conn.sock is not None
            self.local_port = self.conn.sock.getsockname()[1]
        response = self.conn.getresponse()
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        assert reply.headers.get("connection") != "close", reply.headers
        assert self.conn.sock is not None, "the server closed the connection"
        assert self.conn.sock.getsockname()[1] == self.local_port, "a new connection was opened"
        return reply

    def close(self) -> None:
        self.conn.close()
