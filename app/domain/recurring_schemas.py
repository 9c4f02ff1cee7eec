"""Wire models of recurring rules: an expense body without `date`, plus its schedule."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StrictInt

from app.core.calendar import MAX_COUNT, MAX_INTERVAL
from app.domain.schemas import Amount, DateStr, ExpenseFields, ParticipantIn, SplitType, Strict

Every = Literal["day", "week", "month", "year"]


class ScheduleIn(Strict):
    every: Every = Field(description="The unit of the schedule.")
    interval: Annotated[StrictInt, Field(ge=1, le=MAX_INTERVAL)] = Field(
        default=1, description=f"Every `interval` units, 1..{MAX_INTERVAL} (default 1)."
    )
    start_date: DateStr = Field(
        description=(
            "The first occurrence, and the anchor: monthly on day 29-31 falls on the month's last day in shorter "
            "months; yearly on 29 February falls on 28 February in other years. May be in the past (due "
            "occurrences are made at once)."
        )
    )
    end_date: DateStr | None = Field(default=None, description="The last date an occurrence may fall on (inclusive).")
    count: Annotated[StrictInt, Field(ge=1, le=MAX_COUNT)] | None = Field(
        default=None, description=f"How many occurrences, 1..{MAX_COUNT} (skipped ones count). Not with `end_date`."
    )


class RecurringIn(ExpenseFields):
    """`POST` and `PUT` of a rule: the expense to repeat (every field of an expense but `date`) and when."""

    schedule: ScheduleIn


class ScheduleOut(BaseModel):
    every: Every
    interval: int
    start_date: str
    end_date: str | None
    count: int | None


class PayerAsEntered(BaseModel):
    user_id: UUID
    amount: Amount = Field(description="As entered, in the rule's `currency`.")


class RecurringOut(BaseModel):
    """A rule: the expense body it repeats, as entered (amounts with the currency's full decimals), its
    schedule and where it is."""

    id: UUID
    group_id: UUID
    description: str
    amount: Amount = Field(description="As entered, in `currency`.")
    currency: str
    exchange_rate: str | None
    paid_by: UUID | None
    payers: list[PayerAsEntered] | None
    split_type: SplitType
    participants: list[ParticipantIn]
    category: str | None
    notes: str | None
    schedule: ScheduleOut
    next_date: str | None = Field(description="The next occurrence to make (null once stopped or finished).")
    active: bool
    stop_reason: str | None = Field(
        description=(
            "Why the rule is not active: `stopped` (DELETE), `finished` (count or end_date reached), "
            "`member-left` (a payer or participant left), `author-left` (the member whose rule it is left), "
            "`balance-limit-exceeded`, `invalid`."
        )
    )
    stopped_at: datetime | None
    version: int
    created_by: UUID
    created_at: datetime
    updated_by: UUID
    updated_at: datetime
