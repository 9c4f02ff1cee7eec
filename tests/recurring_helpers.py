"""Shared by the recurring tests: a rule's body, and the scheduler driven with a chosen date."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient

from app.domain.recurring_scheduler import Scheduler
from app.infra.config import Settings
from tests.api import Who


def rule_body(
    payer: Who,
    participants: list[Who],
    *,
    amount: str = "30.00",
    schedule: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "description": "rent",
        "amount": amount,
        "paid_by": payer.id,
        "split_type": "equal",
        "participants": [{"user_id": p.id} for p in participants],
        "schedule": schedule or {"every": "month", "start_date": "2030-01-31"},
        **fields,
    }


def run_pass(client: TestClient, today: dt.date, settings: Settings | None = None) -> int:
    """One scheduler pass on the app's event loop, with `today` as the date (the injectable clock)."""
    state = client.app.state  # type: ignore[attr-defined]
    scheduler = state.scheduler
    if settings is not None:
        scheduler = Scheduler(engine=state.engine, pool=state.write_pool, settings=settings)
    made: int = client.portal.call(scheduler.run_pass, today)  # type: ignore[union-attr]
    return made


def dates_made(client: TestClient, who: Who, gid: str, rule_id: str) -> list[str]:
    """The dates of the rule's expenses, oldest created first (the list is newest first)."""
    r = client.get(f"/v1/groups/{gid}/expenses", params={"limit": 200}, headers=who.headers)
    assert r.status_code == 200, r.text
    return [e["date"] for e in reversed(r.json()["items"]) if e["recurring_id"] == rule_id]
