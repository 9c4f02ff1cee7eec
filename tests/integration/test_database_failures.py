"""Every database failure is a 503 problem with Retry-After, on the hot path and through FastAPI, on the
write pool (asyncpg) and the engine (SQLAlchemy); anything else unexpected is a 500 that says the
outcome is unknown. In-process, with the failures injected where the app meets its pools; the same
against a real server and real terminated sessions is tests/integration/test_live_failures.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from app.infra.config import Settings
from app.main import create_app
from tests.api import Api, Who, assert_problem
from tests.dbutil import counts

FAST = {"Content-Type": "application/json"}
FRAMEWORK = {"Content-Type": "application/json; charset=utf-8"}  # not taken by the hot path

FAILURES = {
    "57P03 cannot_connect_now": asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    "53300 too_many_connections": asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    "57P01 admin_shutdown": asyncpg.exceptions.AdminShutdownError("terminating connection"),
    "08006 connection_failure": asyncpg.exceptions.ConnectionFailureError("connection failure"),
    "08003 connection_does_not_exist": asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    "InterfaceError": asyncpg.InterfaceError("connection is closed"),
    "ConnectionRefusedError": ConnectionRefusedError(111, "Connection refused"),
    "OSError": OSError(104, "Connection reset by peer"),
    "pool acquire timeout": TimeoutError(),
}


class FailingPool:
    """Stands in for the asyncpg write pool: acquiring a connection raises the given exception."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    @asynccontextmanager
    async def _raise(self) -> Any:
        raise self.error
        yield  # pragma: no cover

    def acquire(self, timeout: float | None = None) -> Any:
        return self._raise()


@pytest.fixture
def failing_pool(client: TestClient) -> Iterator[FailingPool]:
    state = client.app.state  # type: ignore[attr-defined]
    real = state.write_pool
    fake = FailingPool(RuntimeError("set by the test"))
    state.write_pool = fake
    try:
        yield fake
    finally:
        state.write_pool = real


def _expense(api: Api, who: Who, gid: str, headers: dict[str, str]) -> Any:
    body = {"description": "x", "amount": "3.00", "paid_by": who.id, "split_type": "equal",
            "participants": [{"user_id": who.id}]}  # fmt: skip
    content = api.client.build_request("POST", "/", json=body).content
    return api.client.post(f"/v1/groups/{gid}/expenses", content=content, headers=who.headers | headers)


def _setup(api: Api) -> tuple[Who, str]:
    a = api.user()
    gid = api.group(a)
    assert api.client.get(f"/v1/groups/{gid}", headers=a.headers).status_code == 200  # token cached: hot path on
    return a, gid


@pytest.mark.parametrize("path", [FAST, FRAMEWORK], ids=["hot path", "fastapi"])
@pytest.mark.parametrize("name", list(FAILURES))
def test_a_write_pool_failure_is_a_503_problem_and_writes_nothing(
    api: Api, db_url: URL, failing_pool: FailingPool, name: str, path: dict[str, str]
) -> None:
    a, gid = _setup(api)
    failing_pool.error = FAILURES[name]
    before = counts(db_url)
    r = _expense(api, a, gid, path | {"Idempotency-Key": "k-1", "X-Request-ID": f"failure {name}"})
    body = assert_problem(r, 503, "/database-unavailable")
    assert r.headers["Retry-After"] == "1"
    assert body["request_id"] == r.headers["X-Request-ID"] == f"failure {name}"
    assert "same Idempotency-Key" in body["detail"] and "Traceback" not in r.text
    assert counts(db_url) == before


@pytest.mark.parametrize("path", [FAST, FRAMEWORK], ids=["hot path", "fastapi"])
def test_a_bug_is_a_500_whose_body_says_the_outcome_is_unknown(
    api: Api, failing_pool: FailingPool, path: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    a, gid = _setup(api)
    failing_pool.error = RuntimeError("a bug below the edge")
    r = _expense(api, a, gid, path)  # TestClient re-raises what the app lets escape: the edge must not
    body = assert_problem(r, 500, "/internal-error")
    assert "outcome of the request is unknown" in body["detail"]
    assert "same Idempotency-Key is safe" in body["detail"]
    assert body["request_id"] == r.headers["X-Request-ID"]
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "unhandled error" in x)
    assert line.startswith("ERROR:") and body["request_id"] in line
    assert "POST /v1/groups/{group_id}/expenses 500: unhandled error: RuntimeError: a bug below the edge" in line


def test_a_503_is_logged_once_with_method_route_and_status(
    api: Api, failing_pool: FailingPool, capsys: pytest.CaptureFixture[str]
) -> None:
    a, gid = _setup(api)
    failing_pool.error = FAILURES["57P03 cannot_connect_now"]
    capsys.readouterr()
    r = _expense(api, a, gid, FRAMEWORK | {"X-Request-ID": "one-line"})
    assert r.status_code == 503
    lines = [x for x in capsys.readouterr().err.splitlines() if "one-line" in x]
    assert len(lines) == 1, lines
    assert lines[0].startswith("WARNING:") and "[one-line]" in lines[0]
    assert "POST /v1/groups/{group_id}/expenses 503: CannotConnectNowError" in lines[0]


def test_an_unreachable_engine_is_a_503_on_reads_and_writes() -> None:
    settings = Settings(
        database_url="postgresql://postgres@127.0.0.1:1/nowhere", migrate_on_startup=False,
        db_connect_timeout_s=1.0, _env_file=None,  # type: ignore[call-arg]
    )  # fmt: skip
    with TestClient(create_app(settings)) as c:
        for r in (
            c.get("/v1/users/me", headers={"Authorization": "Bearer some-token"}),
            c.get("/v1/groups", headers={"Authorization": "Bearer some-token"}),
            c.post("/v1/users", json={"name": "A", "email": "a@example.com"}),
        ):
            body = assert_problem(r, 503, "/database-unavailable")
            assert r.headers["Retry-After"] == "1" and body["request_id"] == r.headers["X-Request-ID"]
