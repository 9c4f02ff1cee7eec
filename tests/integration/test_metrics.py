"""GET /metrics: Prometheus text, request counts and latencies per route template and status, replays,
retries by SQLSTATE, lock timeouts, gate waits, pool usage; nothing recorded with METRICS=false.
(Adding up over several workers: tests/integration/test_live_ops.py.)"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.infra import metrics
from app.infra.config import Settings
from app.infra.gate import GroupGate
from app.main import create_app
from tests.api import Api, Who, assert_problem

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
FAST = {"Content-Type": "application/json"}


def scrape(client: TestClient) -> Samples:
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def _expense(api: Api, who: Who, gid: str, headers: dict[str, str] | None = None) -> Any:
    body = {"description": "x", "amount": "2.00", "paid_by": who.id, "split_type": "equal",
            "participants": [{"user_id": who.id}]}  # fmt: skip
    content = api.client.build_request("POST", "/", json=body).content
    return api.client.post(f"/v1/groups/{gid}/expenses", content=content, headers=who.headers | FAST | (headers or {}))


def test_requests_are_counted_by_route_template_and_status(api: Api) -> None:
    a = api.user()
    gid = api.group(a)
    before = scrape(api.client)
    for _ in range(3):
        assert api.client.get(f"/v1/groups/{gid}", headers=a.headers).status_code == 200
    assert api.client.get(f"/v1/groups/{uuid4()}", headers=a.headers).status_code == 404
    assert _expense(api, a, gid).status_code == 201  # the hot path
    assert api.client.get(f"/nowhere/{gid}").status_code == 404
    assert api.client.request("BREW", "/health").status_code == 405
    after = scrape(api.client)
    group = {"method": "GET", "route": "/v1/groups/{group_id}"}
    assert delta(before, after, "quits_http_request_duration_seconds_count", **group, status="200") == 3
    assert delta(before, after, "quits_http_request_duration_seconds_count", **group, status="404") == 1
    assert delta(before, after, "quits_http_request_duration_seconds_bucket", **group, status="200", le="+Inf") == 3
    assert delta(before, after, "quits_http_request_duration_seconds_sum", **group, status="200") > 0
    hot = {"method": "POST", "route": "/v1/groups/{group_id}/expenses", "status": "201"}
    assert delta(before, after, "quits_http_request_duration_seconds_count", **hot) == 1
    assert delta(before, after, "quits_http_request_duration_seconds_count", method="GET", route="unmatched", status="404") == 1
    assert delta(before, after, "quits_http_request_duration_seconds_count", method="OTHER", route="/health", status="405") == 1
    labels = {v for (_, ls) in after for _, v in ls}
    assert not any(gid in v for v in labels), "a raw path became a label value"


def test_replays_retries_and_lock_timeouts(api: Api) -> None:
    a = api.user()
    gid = api.group(a)
    before = scrape(api.client)
    assert _expense(api, a, gid, {"Idempotency-Key": "m-1"}).status_code == 201
    assert _expense(api, a, gid, {"Idempotency-Key": "m-1"}).headers["Idempotent-Replayed"] == "true"
    assert _expense(api, a, gid, {"X-Test-Fault": "40001:2"}).status_code == 201
    assert _expense(api, a, gid, {"X-Test-Fault": "55P03:1"}).status_code == 201
    assert_problem(_expense(api, a, gid, {"X-Test-Fault": "40P01:99"}), 503, "try-again")
    after = scrape(api.client)
    assert delta(before, after, "quits_idempotent_replays_total", route="/v1/groups/{group_id}/expenses") == 1
    assert delta(before, after, "quits_db_retries_total", sqlstate="40001") == 2
    assert delta(before, after, "quits_db_retries_total", sqlstate="55P03") == 1
    assert delta(before, after, "quits_db_retries_total", sqlstate="40P01") == 4  # 5 attempts: 4 retries
    assert delta(before, after, "quits_db_retries_exhausted_total") == 1
    assert delta(before, after, "quits_db_lock_timeouts_total") == 1


def test_published_counts_are_what_observe_would_have_written(client: TestClient) -> None:
    """Requests are counted in memory and published in one go: the histogram must read as if each request
    had been observed on its own (sum, each cumulative bucket, count)."""
    recorder = metrics._RECORDER
    assert recorder is not None
    route = f"/test/{uuid4()}"
    for seconds in (0.001, 0.005, 0.2, 0.25, 20.0):
        recorder.request("GET", route, 200, seconds)
    recorder._flush_requests()
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(recorder.render().decode())
        for s in family.samples
    }
    labels = {"method": "GET", "route": route, "status": "200"}
    buckets = {le: value(samples, "quits_http_request_duration_seconds_bucket", **labels, le=le)
               for le in ("0.005", "0.01", "0.25", "0.5", "10.0", "+Inf")}  # fmt: skip
    assert buckets == {"0.005": 2, "0.01": 2, "0.25": 4, "0.5": 4, "10.0": 4, "+Inf": 5}
    assert value(samples, "quits_http_request_duration_seconds_count", **labels) == 5
    assert value(samples, "quits_http_request_duration_seconds_sum", **labels) == pytest.approx(20.456)


def test_pool_usage(api: Api, settings: Settings) -> None:
    samples = scrape(api.client)
    pool = "quits_db_pool_connections"
    assert value(samples, pool, pool="write", state="max") == settings.db_write_pool_size
    assert value(samples, pool, pool="engine", state="max") == settings.db_pool_size + settings.db_max_overflow
    assert value(samples, pool, pool="engine", state="idle") >= 1  # the reads of this very test's setup
    assert value(samples, pool, pool="engine", state="in_use") >= 0


def test_gate_waits_and_timeouts(client: TestClient) -> None:
    gate = GroupGate(1, name="test_gate")
    group = uuid4()

    async def run() -> None:
        async with gate.enter(group, 5):
            waiter = asyncio.create_task(_enter(gate, group, 5))
            await asyncio.sleep(0.05)
            await _enter(gate, group, 0.01)  # gives up waiting: a timeout
        await waiter

    before = scrape(client)
    asyncio.run(run())
    after = scrape(client)
    assert delta(before, after, "quits_gate_waits_total", gate="test_gate") == 2
    assert delta(before, after, "quits_gate_timeouts_total", gate="test_gate") == 1


async def _enter(gate: GroupGate, group: Any, wait_s: float) -> None:
    async with gate.enter(group, wait_s):
        pass


def test_metrics_off(client: TestClient, settings: Settings) -> None:
    off = settings.model_copy(update={"metrics": False})
    with TestClient(create_app(off)) as c:
        before = scrape(client)
        for _ in range(3):
            assert c.get("/health").status_code == 200
        assert_problem(c.get("/metrics"), 404, "not-found")
        after = scrape(client)
    assert delta(before, after, "quits_http_request_duration_seconds_count", method="GET", route="/health", status="200") == 0


def test_the_multiprocess_directory(tmp_path: Path, client: TestClient) -> None:
    assert os.environ[metrics.ENV] == str(metrics._RECORDER.directory)  # type: ignore[union-attr]
    # An explicit directory is used as it is; a symlink or another user's directory is refused.
    assert metrics.choose_dir(tmp_path / "explicit") == tmp_path / "explicit"
    (tmp_path / "link").symlink_to(tmp_path / "explicit")
    with pytest.raises(RuntimeError, match="not a directory owned by this user"):
        metrics.choose_dir(tmp_path / "link")
    # The per-server directory is named after the server process and its start time.
    pid, start = metrics.server_identity()
    assert pid == os.getpid() and start == metrics._start_time(os.getpid()) != ""
    # Directories of servers that no longer run are removed; a running server's is kept.
    dead = tmp_path / f"{metrics.DIR_PREFIX}{2**22 + 12345}-1"
    recycled = tmp_path / f"{metrics.DIR_PREFIX}{pid}-{int(start) - 1}"  # this pid, an earlier process
    alive = tmp_path / f"{metrics.DIR_PREFIX}{pid}-{start}"
    for d in (dead, recycled, alive):
        d.mkdir()
    metrics._remove_stale_dirs(tmp_path)
    assert not dead.exists() and not recycled.exists() and alive.exists()
