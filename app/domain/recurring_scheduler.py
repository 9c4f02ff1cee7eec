"""The recurring scheduler: each worker (and host) makes the due occurrences, each exactly once.

A pass claims due rules, earliest next_date first, in short transactions (`FOR UPDATE SKIP LOCKED`
and a lease of settings.recurring_lease_s, so concurrent workers take different rules and never wait
on each other), and makes one occurrence of each; it claims again until nothing is due or it has
tried settings.recurring_max_per_pass occurrences. A rule with missed occurrences is claimed again
after each one, so they are made in date order, all of them, across passes.

Exactly once does not rest on the claim. An occurrence is an ordinary expense made by the same
command as a POST (app.domain.expenses.create → quits_expense_create), whose statement also advances
the rule (quits_recurring_advance): the rule row locked, active, still at the version this worker
read and due on that very date, else QUR12 and nothing is written. So whichever worker commits first
makes the occurrence, a stale one writes nothing, and a worker killed at any point has either
committed the expense with the rule's advance or nothing at all (its lease then runs out and another
worker takes the rule). The unique index on (recurring_id, occurrence_date) is the final guard.

An occurrence that can no longer be made (a payer or participant, or the rule's author, left the
group; the balance limit; a body that no longer validates) stops its rule, with recurring.stopped
and the reason in the activity; nothing else is written. Anything transient (the database, lock
contention) leaves the rule as it is, for a later pass.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.calendar import occurrence
from app.core.errors import DomainError
from app.domain import expenses
from app.domain.expense_drafts import draft_expense
from app.domain.recurring import now_utc, skip, stop, stop_activity
from app.domain.recurring_rules import COLUMNS, RuleRecord, expense_body, record, row
from app.domain.recurring_rules import today as rules_today
from app.infra.config import Settings
from app.infra.gate import GroupGate
from app.infra.tx import run_transaction
from app.ledger import commands
from app.ledger.commands import Claim, Command, Rejected

logger = logging.getLogger("quits.recurring")

OCCURRENCE_KEY = "uq_expenses_group_id_recurring_id_occurrence_date"
# Why an occurrence cannot be made → the rule's stop_reason.
STOP_REASONS = {
    commands.NOT_A_MEMBER: "member-left",
    commands.GROUP_NOT_FOUND: "author-left",
    commands.BALANCE_LIMIT: "balance-limit-exceeded",
}

# What a pass survives: the database unreachable or failing, contention past the retries (try-again).
TRANSIENT = (DomainError, OSError, DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError)

_CLAIM = text(
    f"""
    UPDATE recurring_rules r SET claimed_until = now() + make_interval(secs => :lease_s)
    FROM (
        SELECT group_id, id FROM recurring_rules
        WHERE active AND next_date <= :today AND (claimed_until IS NULL OR claimed_until < now())
        ORDER BY next_date, id
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    ) due, groups g
    WHERE r.group_id = due.group_id AND r.id = due.id AND g.id = r.group_id
    RETURNING {", ".join(f"r.{c.strip()}" for c in COLUMNS.split(","))}, g.currency AS group_currency
    """
)


class Scheduler:
    """One per worker (app.main's lifespan). `clock` gives the date a pass goes by (settings.recurring_today
    pins it for tests); run_pass takes any date, so tests drive months of occurrences in seconds."""

    def __init__(
        self, *, engine: AsyncEngine, pool: asyncpg.Pool, settings: Settings, gate: GroupGate | None = None
    ) -> None:
        self.engine, self.pool, self.settings = engine, pool, settings
        self.gate = gate or GroupGate(0)
        self.clock: Callable[[], dt.date] = lambda: rules_today(settings)
        self._wake = asyncio.Event()
        self.raced = 0  # occurrences another worker made first (or the rule changed): nothing written

    def wake(self) -> None:
        """Run a pass now (a rule was created or changed on this worker), not at the next interval."""
        self._wake.set()

    async def run_forever(self) -> None:
        interval_s = self.settings.recurring_interval_ms / 1000
        while True:
            try:
                async with asyncio.timeout(interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.run_pass(self.clock())
            except TRANSIENT as exc:
                logger.warning("recurring pass interrupted, next pass in %.1fs: %r", interval_s, exc)
            except Exception:
                logger.exception("recurring pass failed")

    async def run_pass(self, today: dt.date) -> int:
        """Make due occurrences (dated on or before today); returns how many were made."""
        tried = made = 0
        while tried < self.settings.recurring_max_per_pass:
            batch = min(self.settings.recurring_batch, self.settings.recurring_max_per_pass - tried)
            claimed = await self._claim(today, batch)
            if not claimed:
                break
            for rule, currency in claimed:
                tried += 1
                try:
                    made += await self._occur(rule, currency)
                except TRANSIENT as exc:  # the rule stays as it is; its lease runs out, a later pass retries
                    logger.warning("recurring rule %s: occurrence of %s not made now: %r", rule.id, rule.next_date, exc)
        return made

    async def _claim(self, today: dt.date, batch: int) -> list[tuple[RuleRecord, str]]:
        params = {"today": today, "batch": batch, "lease_s": self.settings.recurring_lease_s}

        async def work(conn: Any) -> list[tuple[RuleRecord, str]]:
            rows = (await conn.execute(_CLAIM, params)).mappings().all()
            return [(record(dict(r)), str(r["group_currency"])) for r in rows]

        claimed = await run_transaction(self.engine, self.settings, work)
        return sorted(claimed, key=lambda c: (c[0].next_date or dt.date.max, c[0].id))

    async def _occur(self, rule: RuleRecord, currency: str) -> int:
        """Make the rule's next occurrence: 1 when this worker made it, else 0."""
        day = rule.next_date
        assert day is not None
        try:
            draft = draft_expense(expense_body(rule.template, day), currency)
        except (ValidationError, DomainError) as exc:
            await self._stop(rule, reason="invalid", message=f"the expense no longer validates: {exc}", day=day)
            return 0
        claim = Claim(user_id=rule.updated_by, key=None, fingerprint=b"", ttl_hours=self.settings.idempotency_ttl_hours)
        made = expenses.Occurrence(rule_id=rule.id, date=day, expected_version=rule.version,
                                   next_date=occurrence(rule.schedule, rule.next_index + 1))  # fmt: skip
        try:
            async with self.gate.enter(rule.group_id, self.settings.lock_timeout_ms / 1000):
                await expenses.create(self.pool, self.settings, claim=claim, group_id=rule.group_id,
                                      group_currency=currency, draft=draft, occurrence=made)  # fmt: skip
            return 1
        except Rejected as exc:
            if exc.sqlstate == commands.RULE_CHANGED:
                self.raced += 1
                return 0  # made by another worker, or edited, skipped or stopped since it was read
            reason = STOP_REASONS.get(exc.sqlstate)
            if reason is None:
                raise
            if reason == "author-left":
                message = f"{rule.updated_by}, whose rule it is, is no longer a member of the group"
            else:
                message = exc.detail
            await self._stop(rule, reason=reason, message=message, day=day)
            return 0
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != OCCURRENCE_KEY:
                raise
            logger.warning("recurring rule %s: the occurrence of %s already exists; moving on", rule.id, day)
            await self._already_made(rule)
            return 0

    async def _stop(self, rule: RuleRecord, *, reason: str, message: str, day: dt.date) -> None:
        at = now_utc()
        activity = [stop_activity(rule, reason, message, occurrence_date=day.isoformat())]
        await self._update(rule, new=stop(rule, reason=reason, at=at), activity=activity, at=at)
        logger.warning("recurring rule %s stopped (%s): %s", rule.id, reason, message)

    async def _already_made(self, rule: RuleRecord) -> None:
        """The final guard fired (the rule's advance was lost): move the rule past the existing expense."""
        at = now_utc()
        moved = skip(rule, at)
        assert moved is not None and rule.next_date is not None
        activity = [{"type": "recurring.updated",
                     "detail": {"recurring_id": str(rule.id), "already_made": rule.next_date.isoformat()}}]  # fmt: skip
        activity += moved.activity[1:]  # "finished", when that was the last one
        await self._update(rule, new=moved.rule, activity=activity, at=at)

    async def _update(
        self, rule: RuleRecord, *, new: RuleRecord, activity: list[dict[str, Any]], at: dt.datetime
    ) -> None:
        cmd = {
            "caller": rule.updated_by,
            "scheduler": True,
            "expected_version": rule.version,
            "rule": row(new),
            "at": at,
            "activity": activity,
        }
        try:
            await commands.execute(self.pool, self.settings, Command.RECURRING_UPDATE, rule.group_id, cmd)
        except Rejected as exc:
            if exc.sqlstate not in (commands.RULE_CHANGED, commands.RULE_STOPPED, commands.RULE_NOT_FOUND):
                raise
            logger.info("recurring rule %s changed meanwhile; the next pass reads it again", rule.id)
