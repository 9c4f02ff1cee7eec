"""A revoked token is refused by every worker of the real 2-worker server within one second.

Both workers have the token cached (they served it just before); probes on fresh connections (so the
kernel hands them to either worker; `X-Test-Worker` says which) keep using it, on `GET /v1/users/me`
(FastAPI's path) and on `POST .../expenses` (the hot path, which serves cached tokens only), while
another token of the same user revokes it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from tests.api import Who
from tests.concurrency.helpers import Live

REFUSED_WITHIN_S = 1.0
PROBE_THREADS = 4
PROBE_FOR_S = 2.0


@dataclass(frozen=True)
class Probe:
    sent: float
    answered: float
    pid: str
    status: int


def _probe(base_url: str, token: str, gid: str, user_id: str, n: int) -> Probe:
    headers = {"Authorization": f"Bearer {token}"}
    sent = time.monotonic()
    if n % 2:
        body = {
            "description": "p",
            "amount": "1.00",
            "paid_by": user_id,
            "split_type": "equal",
            "participants": [{"user_id": user_id}],
        }
        r = httpx.post(f"{base_url}/v1/groups/{gid}/expenses", json=body, headers=headers, timeout=10)
    else:
        r = httpx.get(f"{base_url}/v1/users/me", headers=headers, timeout=10)
    return Probe(sent, time.monotonic(), r.headers["x-test-worker"], r.status_code)


def _keep_probing(base_url: str, token: str, gid: str, user_id: str, until: float) -> list[Probe]:
    found: list[Probe] = []
    n = 0
    while time.monotonic() < until:
        found.append(_probe(base_url, token, gid, user_id, n))
        n += 1
    return found


def _setup(live: Live) -> tuple[Who, str, str, str]:
    api = live.api()
    owner = api.user("Owner")
    gid = api.group(owner)
    r = api.client.post("/v1/users/me/tokens", json={"name": "victim"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    return owner, gid, r.json()["api_token"], r.json()["id"]


def test_a_revoked_token_is_refused_by_both_workers_within_one_second(live: Live) -> None:
    owner, gid, victim, victim_id = _setup(live)
    start = time.monotonic()
    until = start + PROBE_FOR_S + 0.5
    with ThreadPoolExecutor(PROBE_THREADS) as pool:
        futures = [
            pool.submit(_keep_probing, live.base_url, victim, gid, owner.id, until) for _ in range(PROBE_THREADS)
        ]
        time.sleep(0.5)  # both workers serve (and cache) the token meanwhile
        delete_sent = time.monotonic()
        r = httpx.delete(f"{live.base_url}/v1/users/me/tokens/{victim_id}", headers=owner.headers, timeout=10)
        revoked = time.monotonic()
        assert r.status_code == 204, r.text
        probes = sorted((p for f in futures for p in f.result()), key=lambda p: p.sent)

    # Answered before the revocation was asked for (one sent just before it may be served after it, on a
    # busy machine, and rightly refused).
    before = [p for p in probes if p.answered < delete_sent]
    late = [p for p in probes if p.sent >= revoked + REFUSED_WITHIN_S]
    assert {p.status for p in before} <= {200, 201}, before
    assert len({p.pid for p in before}) == 2, "both workers must have served (and cached) the token first"
    assert late and {p.status for p in late} == {401}, [p for p in late if p.status != 401]
    assert len({p.pid for p in late}) == 2, "both workers must be seen refusing the token"
    refusing_since = {
        pid: min(p.sent for p in probes if p.pid == pid and p.status == 401) for pid in {p.pid for p in late}
    }
    assert all(t - revoked < REFUSED_WITHIN_S for t in refusing_since.values()), (revoked, refusing_since)
    created = sum(1 for p in probes if p.status == 201)
    assert live.count("expenses") == created  # a refused request wrote nothing


def test_the_revoking_worker_refuses_at_once(live: Live) -> None:
    """The worker that revokes drops the token from its own cache: the token revoking itself is refused
    by the next request on the same connection (the same worker)."""
    api = live.api()
    owner = api.user("Self")
    with live.client() as c:
        mine = c.get("/v1/users/me/tokens", headers=owner.headers).json()
        assert [t["name"] for t in mine] == ["registration"]
        worker = c.get("/v1/users/me", headers=owner.headers).headers["x-test-worker"]
        r = c.delete(f"/v1/users/me/tokens/{mine[0]['id']}", headers=owner.headers)
        assert r.status_code == 204 and r.headers["x-test-worker"] == worker
        again = c.get("/v1/users/me", headers=owner.headers)
        assert again.status_code == 401 and again.headers["x-test-worker"] == worker
