"""Database failures against a real server (uvicorn, one worker) and real sessions: a write whose session
is terminated with pg_terminate_backend mid-statement is a 503 problem with Retry-After, on the hot
path and through FastAPI, and the client's keep-alive connection stays open and usable; a write that
waits too long for a pooled connection is a 503; sessions terminated while idle cost no request."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import URL

from tests.dbutil import run_sql
from tests.live import KeepAlive, LiveServer, Reply, live_server, server_env

APP_NAME = f"quits-live-{uuid.uuid4().hex[:8]}"  # only this server's sessions are terminated
FAST = {"Content-Type": "application/json"}
FRAMEWORK = {"Content-Type": "application/json; charset=utf-8"}


@pytest.fixture(scope="module")
def server(db_url: URL) -> Iterator[LiveServer]:
    # One write connection, and a short wait for it: the pool-timeout test holds it with a slow write.
    env = server_env(db_url, DB_APPLICATION_NAME=APP_NAME, DB_WRITE_POOL_SIZE="1", DB_POOL_TIMEOUT_S="0.5")
    with live_server(env) as srv:
        yield srv


@pytest.fixture
def conn(server: LiveServer, clean_db: URL) -> Iterator[KeepAlive]:
    ka = KeepAlive(server)
    yield ka
    ka.close()


def _member(conn: KeepAlive) -> tuple[dict[str, str], str, str]:
    """A user (headers, id) and their group; the token is cached by the worker, so the hot path is open."""
    r = conn.request("POST", "/v1/users", json={"name": "A", "email": f"a-{uuid.uuid4().hex[:8]}@example.com"})
    assert r.status == 201, r.body
    user = r.json()
    auth = {"Authorization": f"Bearer {user['api_token']}"}
    g = conn.request("POST", "/v1/groups", json={"name": "G", "currency": "USD"}, headers=auth)
    assert g.status == 201, g.body
    assert conn.request("GET", f"/v1/groups/{g.json()['id']}", headers=auth).status == 200
    return auth, user["id"], g.json()["id"]


def _expense(conn: KeepAlive, auth: dict[str, str], uid: str, gid: str, headers: dict[str, str]) -> Reply:
    body = {"description": "x", "amount": "5.00", "paid_by": uid, "split_type": "equal",
            "participants": [{"user_id": uid}]}  # fmt: skip
    return conn.request("POST", f"/v1/groups/{gid}/expenses", json=body, headers=auth | headers)


def _in_background(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        out["reply"] = call()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _wait_for_sleeping_write(db_url: URL) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = run_sql(
            db_url,
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'"
            " AND query LIKE '%pg_sleep%'",
            APP_NAME,
        )
        if rows:
            return
        time.sleep(0.05)
    raise AssertionError("the slow write never reached the database")


def _terminate_sessions(db_url: URL) -> int:
    rows = run_sql(
        db_url, "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name = $1", APP_NAME
    )
    return sum(1 for r in rows if r["done"])


@pytest.mark.parametrize("path", [FAST, FRAMEWORK], ids=["hot path", "fastapi"])
def test_a_terminated_write_is_a_503_and_the_connection_stays_usable(
    conn: KeepAlive, db_url: URL, path: dict[str, str]
) -> None:
    auth, uid, gid = _member(conn)
    slow = path | {"Idempotency-Key": "k-1", "X-Test-Delay-Ms": "10000", "X-Request-ID": "terminated"}
    thread, out = _in_background(lambda: _expense(conn, auth, uid, gid, slow))
    _wait_for_sleeping_write(db_url)
    assert _terminate_sessions(db_url) >= 1
    thread.join(timeout=30)
    r: Reply = out["reply"]
    assert r.status == 503, r.body
    assert r.headers["content-type"] == "application/problem+json" and r.headers["retry-after"] == "1"
    body = r.json()
    assert body["type"].endswith("/database-unavailable") and body["status"] == 503
    assert body["request_id"] == r.headers["x-request-id"] == "terminated"
    assert "same Idempotency-Key is safe" in body["detail"]
    # The same connection: the retry with the same key writes once (the terminated statement rolled back) ...
    again = _expense(conn, auth, uid, gid, path | {"Idempotency-Key": "k-1"})
    assert again.status == 201, again.body
    assert "idempotent-replayed" not in again.headers
    replay = _expense(conn, auth, uid, gid, path | {"Idempotency-Key": "k-1"})
    assert replay.status == 201 and replay.headers["idempotent-replayed"] == "true" and replay.body == again.body
    assert run_sql(db_url, "SELECT count(*) AS n FROM expenses WHERE group_id = $1", uuid.UUID(gid))[0]["n"] == 1
    # ... and the service is ready again.
    assert conn.request("GET", "/health/ready").status == 200


def test_waiting_too_long_for_a_write_connection_is_a_503(conn: KeepAlive, server: LiveServer, db_url: URL) -> None:
    auth, uid, gid = _member(conn)
    other = KeepAlive(server)
    try:
        slow = FAST | {"X-Test-Delay-Ms": "3000"}  # holds the only write connection for 3 s
        thread, out = _in_background(lambda: _expense(other, auth, uid, gid, slow))
        _wait_for_sleeping_write(db_url)
        started = time.monotonic()
        r = _expense(conn, auth, uid, gid, FAST)
        waited = time.monotonic() - started
        thread.join(timeout=30)
    finally:
        other.close()
    assert r.status == 503 and r.headers["retry-after"] == "1", r.body
    assert r.json()["type"].endswith("/database-unavailable")
    assert 0.4 < waited < 2.5, waited  # DB_POOL_TIMEOUT_S=0.5, not the 3 s the other write holds it
    assert out["reply"].status == 201
    assert _expense(conn, auth, uid, gid, FAST).status == 201  # the same connection, the pool free again


def test_sessions_terminated_while_idle_cost_no_request(conn: KeepAlive, db_url: URL) -> None:
    auth, uid, gid = _member(conn)
    assert _expense(conn, auth, uid, gid, FAST).status == 201  # both pools now hold a connection
    assert _terminate_sessions(db_url) >= 1
    deadline = time.monotonic() + 10
    while run_sql(db_url, "SELECT 1 FROM pg_stat_activity WHERE application_name = $1", APP_NAME):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)  # the server's event loop notices the closed sockets
    assert conn.request("GET", f"/v1/groups/{gid}/balances", headers=auth).status == 200  # engine
    assert _expense(conn, auth, uid, gid, FAST).status == 201  # write pool
