"""Failed-login limits hold across the two workers of the real server, under parallel guesses."""

from __future__ import annotations

import uuid

import httpx

from tests.concurrency.helpers import Live, storm

ACCOUNT_LIMIT = 10  # the default login_max_failures_per_account
GUESSES = 24


def test_parallel_guesses_on_both_workers_get_no_more_than_the_limit(live: Live) -> None:
    """Every check is counted before the password is verified, in PostgreSQL: however the guesses race
    and whichever worker takes them, at most ACCOUNT_LIMIT are verified (401); the rest are 429."""
    email, password = f"g-{uuid.uuid4().hex[:8]}@example.com", "the real passphrase"
    with live.client() as c:
        assert c.post("/v1/users", json={"name": "G", "email": email, "password": password}).status_code == 201

    def guess(client: httpx.Client) -> tuple[int, str]:
        r = client.post("/v1/sessions", json={"email": email, "password": "a wrong guess"})
        return r.status_code, r.headers["x-test-worker"]

    results = storm(live.base_url, [guess] * GUESSES)
    statuses = [status for status, _ in results]
    assert statuses.count(401) == ACCOUNT_LIMIT, statuses
    assert statuses.count(429) == GUESSES - ACCOUNT_LIMIT, statuses
    assert len({worker for _, worker in results}) == 2, "the guesses must have reached both workers"
    with live.client() as c:
        r = c.post("/v1/sessions", json={"email": email, "password": password})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert live.count("api_tokens") == 1  # only the registration token: no guess logged in
