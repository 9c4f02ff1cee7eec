"""Recurring rules: the writes, one command each (create; edit, skip and stop through one update).

As for expenses, the service reads what it needs, renders the response it will return (stored with
the Idempotency-Key in the same statement), and lets the database check the caller's membership and
the rule's version under its lock. A rule is never deleted: a stop keeps it, inactive, with its
reason. Occurrences are made by app.domain.recurring_scheduler. Services never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core import calendar
from app.core.errors import DomainError
from app.core.preconditions import require_tag
from app.domain.recurring_rules import (
    RuleRecord,
    Validated,
    etag,
    get,
    position,
    render,
    row,
    schedule_fields,
    stopped_error,
    today,
)
from app.infra.config import Settings
from app.infra.ids import new_id
from app.ledger import commands
from app.ledger.commands import Claim, Command, Outcome, Rejected

CREATED, UPDATED = 201, 200
STOPPED, FINISHED = "stopped", "finished"


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """A rule's next state and the activity that records it; None from a change function: nothing to do."""

    rule: RuleRecord
    activity: list[dict[str, Any]]
    members: list[list[str]] | None = None


def stop_activity(rule: RuleRecord, reason: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "recurring.stopped",
            "detail": {"recurring_id": str(rule.id), "reason": reason, "message": message, **extra}}  # fmt: skip


def stop(rule: RuleRecord, *, reason: str, at: datetime) -> RuleRecord:
    """The rule stopped for reason: no next occurrence; what was made stays."""
    return replace(rule, next_date=None, active=False, stop_reason=reason, stopped_at=at, version=rule.version + 1)


def skip(rule: RuleRecord, at: datetime) -> Change | None:
    """POST .../skip: skip the next occurrence: the one after it becomes next (none left: the rule is finished)."""
    if not rule.active or rule.next_date is None:
        raise stopped_error()
    index = rule.next_index + 1
    following = calendar.occurrence(rule.schedule, index)
    moved = replace(rule, next_index=index, next_date=following, last_date=rule.next_date, version=rule.version + 1)
    activity = [{"type": "recurring.updated",
                 "detail": {"recurring_id": str(rule.id), "skipped": rule.next_date.isoformat()}}]  # fmt: skip
    if following is None:
        moved = replace(moved, active=False, stop_reason=FINISHED, stopped_at=at)
        activity.append(stop_activity(rule, FINISHED, "the last occurrence was skipped"))
    return Change(rule=moved, activity=activity)


# ---- writes: one command each ------------------------------------------------------------------------


async def create(
    pool: asyncpg.Pool,
    engine: AsyncEngine,
    settings: Settings,
    *,
    claim: Claim,
    group_id: uuid.UUID,
    validated: Validated,
) -> tuple[Outcome, bytes]:
    """One round trip: the rule is rendered first and stored with the key, in the same statement. A
    retry under the same key replays, even when its start_date now owes more occurrences than allowed."""
    replay = await _stored(engine, claim)
    if replay is not None and replay.body is not None:
        return replay, replay.body
    index, first = position(validated.schedule, after=None, today=today(settings), max_due=settings.recurring_max_due)
    now = now_utc()
    rule = RuleRecord(
        id=new_id(), group_id=group_id, template=validated.template, **schedule_fields(validated.schedule),
        next_index=index, next_date=first, last_date=None, active=True, stop_reason=None, stopped_at=None,
        version=1, created_by=claim.user_id, created_at=now, updated_by=claim.user_id, updated_at=now,
    )  # fmt: skip
    response = orjson.dumps(render(rule))
    cmd = {"caller": claim.user_id, "claim": claim.doc(status=CREATED, response=response), "rule": row(rule),
           "members": validated.members}  # fmt: skip
    return await commands.execute(pool, settings, Command.RECURRING_CREATE, group_id, cmd), response


How = Callable[[RuleRecord, datetime], Change | None]


def edited(validated: Validated, settings: Settings, *, user_id: uuid.UUID) -> How:
    """PUT: the new body and schedule, for occurrences after the last one made or skipped."""

    def change(rule: RuleRecord, at: datetime) -> Change | None:
        if not rule.active:
            raise stopped_error()
        if validated.template == rule.template and validated.schedule == rule.schedule:
            return None
        index, first = position(
            validated.schedule, after=rule.last_date, today=today(settings), max_due=settings.recurring_max_due
        )
        new = replace(rule, template=validated.template, **schedule_fields(validated.schedule), next_index=index,
                      next_date=first, version=rule.version + 1, updated_by=user_id, updated_at=at)  # fmt: skip
        activity = [{"type": "recurring.updated", "detail": {"recurring_id": str(rule.id)}}]
        return Change(rule=new, activity=activity, members=validated.members)

    return change


def stopped(rule: RuleRecord, at: datetime) -> Change | None:
    """DELETE: stop the rule; a stopped rule is returned as it is."""
    if not rule.active:
        return None
    return Change(rule=stop(rule, reason=STOPPED, at=at),
                  activity=[stop_activity(rule, STOPPED, "stopped by a member")])  # fmt: skip


async def change(
    pool: asyncpg.Pool,
    engine: AsyncEngine,
    settings: Settings,
    *,
    claim: Claim,
    group_id: uuid.UUID,
    rule_id: uuid.UUID,
    how: How,
    if_match: frozenset[str] | None = None,
) -> tuple[Outcome | None, RuleRecord | None]:
    """Read, apply how, then one command that writes only if the version read is still current: else,
    with If-Match, 412; without, read again (an occurrence made meanwhile moves the rule on). A retry
    of a request that committed replays it, even though its If-Match no longer matches."""
    replay = await _stored(engine, claim)
    if replay is not None:
        return replay, None
    for _ in range(settings.retry_max_attempts):
        async with engine.connect() as conn:
            current = await get(conn, group_id, rule_id)
        require_tag(etag(current), if_match)
        at = now_utc()
        result = how(current, at)
        if result is None:
            return await _key_only(pool, settings, claim=claim, group_id=group_id, current=current), current
        cmd = {
            "caller": claim.user_id,
            "claim": claim.doc(status=UPDATED, response=orjson.dumps(render(result.rule))),
            "expected_version": current.version,
            "rule": row(result.rule),
            "members": result.members,
            "at": at,
            "activity": result.activity,
        }
        try:
            return await commands.execute(pool, settings, Command.RECURRING_UPDATE, group_id, cmd), result.rule
        except Rejected as exc:
            if exc.sqlstate not in (commands.RULE_CHANGED, commands.RULE_STOPPED):
                raise
            if if_match is not None:
                raise DomainError("precondition-failed", "the recurring rule changed since If-Match was read") from None
    raise DomainError("try-again", "the recurring rule kept changing; retry later")


async def _stored(engine: AsyncEngine, claim: Claim) -> Outcome | None:
    """The stored response of the caller's Idempotency-Key, if it was used by this very request (another
    request under the key: 422). Only a look-up: the command itself claims the key."""
    if claim.key is None:
        return None
    sql = text(
        "SELECT fingerprint, status_code, response_body FROM idempotency_keys"
        " WHERE user_id = :u AND key = :k AND created_at >= now() - make_interval(hours => :ttl)"
    )
    async with engine.connect() as conn:
        found = (await conn.execute(sql, {"u": claim.user_id, "k": claim.key, "ttl": claim.ttl_hours})).first()
    if found is None:
        return None
    if bytes(found.fingerprint) != claim.fingerprint:
        raise DomainError("idempotency-key-reused", "this Idempotency-Key was used with a different request")
    return Outcome(replayed=True, status=found.status_code, body=found.response_body.encode())


async def _key_only(
    pool: asyncpg.Pool, settings: Settings, *, claim: Claim, group_id: uuid.UUID, current: RuleRecord
) -> Outcome | None:
    """A request that changes nothing writes nothing but its Idempotency-Key (so a retry replays)."""
    if claim.key is None:
        return None
    cmd = {"caller": claim.user_id, "claim": claim.doc(status=UPDATED, response=orjson.dumps(render(current)))}
    return await commands.execute(pool, settings, Command.KEY_ONLY, group_id, cmd)
