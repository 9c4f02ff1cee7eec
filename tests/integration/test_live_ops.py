"""`uvicorn app.main:app --workers 2` as production runs it: metrics added up over both workers without
any setting (the workers share a directory named after their supervisor), JSON logs (one object per
line, from the supervisor too with the shipped log config), request ids on log lines, and start-up
lines naming the database (without its password), the embedded server and the schema revision."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.mmap_dict import MmapedDict
from sqlalchemy.engine import URL

from app.api.health import read_migrations
from app.infra.metrics import DIR_PREFIX, base_dir
from tests.integration.test_metrics import value
from tests.live import LiveServer, live_server, server_env

PASSWORD = "not-a-real-password-7f3a"  # the test server trusts local connections: any password works
LOG_CONFIG = "app/infra/uvicorn_log_json.json"


@pytest.fixture(scope="module")
def server(db_url: URL) -> Iterator[LiveServer]:
    url = db_url if db_url.host is None else db_url.set(password=PASSWORD)  # a socket URL: no password
    env = server_env(url, LOG_FORMAT="json", METRICS_INTERVAL_S="0.2")  # workers publish every 0.2 s
    with live_server(env, workers=2, args=("--log-config", LOG_CONFIG)) as srv:
        yield srv


def _scrape(server: LiveServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    r = httpx.get(server.base_url + "/metrics", timeout=10)  # a new connection: either worker
    assert r.status_code == 200, r.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(r.text)
        for s in f.samples
    }


def _per_worker(directory: Path) -> Counter[int]:
    """GET /health 200 counts in each worker's own file (what the aggregate must add up)."""
    found: Counter[int] = Counter()
    for path in directory.glob("histogram_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, count, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _name, sample, labels, _ = orjson.loads(key)
            labels.pop("le", None)  # a worker's buckets are not cumulative: together they count its requests
            if sample.endswith("_bucket") and labels == {"method": "GET", "route": "/health", "status": "200"}:
                found[pid] += int(count)
    return found


def test_metrics_add_up_over_both_workers(server: LiveServer) -> None:
    directories = list(base_dir().glob(f"{DIR_PREFIX}{server.process.pid}-*"))
    assert len(directories) == 1, directories  # one directory for the server, named after the supervisor
    health = {"method": "GET", "route": "/health", "status": "200"}
    time.sleep(0.6)  # the start-up's health probes published (every 0.2 s) before the base is read: one that
    # a busy worker published only after the base once made the total 21 for 20 sent
    base = value(_scrape(server), "quits_http_request_duration_seconds_count", **health)
    sent = 0
    while len(_per_worker(directories[0])) < 2 and sent < 400:  # until both workers served some
        for _ in range(20):
            assert httpx.get(server.base_url + "/health", timeout=10).status_code == 200  # a new connection each
        sent += 20
        time.sleep(0.6)  # both workers have published their counts
    per_worker = _per_worker(directories[0])
    assert len(per_worker) == 2, per_worker
    for _ in range(6):  # whichever worker answers, the total is both workers' sum
        assert value(_scrape(server), "quits_http_request_duration_seconds_count", **health) == base + sent == sum(per_worker.values())


def _log_lines(server: LiveServer) -> list[dict[str, Any]]:
    time.sleep(0.3)
    lines = [line for line in server.log().splitlines() if line.strip()]
    assert lines
    return [orjson.loads(line) for line in lines]  # every line is one JSON object


def test_json_logs_with_request_ids(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        assert c.get("/nowhere", headers={"X-Request-ID": "live-404"}).status_code == 404
        user = c.post("/v1/users", json={"name": "L", "email": f"l-{time.time_ns()}@example.com"}).json()
        auth = {"Authorization": f"Bearer {user['api_token']}", "X-Request-ID": "live-503"}
        gid = c.post("/v1/groups", json={"name": "G", "currency": "USD"}, headers=auth).json()["id"]
        body = {"description": "x", "amount": "1.00", "paid_by": user["id"], "split_type": "equal",
                "participants": [{"user_id": user["id"]}]}  # fmt: skip
        r = c.post(f"/v1/groups/{gid}/expenses", json=body, headers=auth | {"X-Test-Fault": "40001:99"})
        assert r.status_code == 503
    lines = _log_lines(server)
    assert all({"time", "level", "logger", "message", "request_id"} <= set(line) for line in lines)
    access = [x for x in lines if x["request_id"] == "live-404"]
    assert access and access[0]["route"] == "unmatched" and access[0]["status"] == 404
    failed = [x for x in lines if x["request_id"] == "live-503" and x["level"] == "WARNING" and "503" in x["message"]]
    assert len(failed) == 1, failed
    assert failed[0]["method"] == "POST" and failed[0]["route"] == "/v1/groups/{group_id}/expenses"
    assert failed[0]["status"] == 503 and "POST /v1/groups/{group_id}/expenses 503" in failed[0]["message"]
    retries = [x for x in lines if x["request_id"] == "live-503" and "transient conflict" in x["message"]]
    assert len(retries) == 5  # the retries of app.infra.tx, on lines of the same request


def test_startup_lines_name_the_database_and_the_schema(server: LiveServer, db_url: URL) -> None:
    messages = [x["message"] for x in _log_lines(server)]
    text = "\n".join(messages)
    assert PASSWORD not in text
    database = [m for m in messages if m.startswith("database ")]
    assert len(database) == 2, database  # one per worker
    assert str(db_url.database) in database[0] and "no embedded server started" in database[0]
    if db_url.host is not None:
        assert ":***@" in database[0]
    head = read_migrations().head
    assert sum(f"schema at revision {head}" in m for m in messages) == 2
    assert any(m.startswith("Started parent process") for m in messages)  # the supervisor's line is JSON too
