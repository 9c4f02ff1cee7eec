"""Wire models. Every string has a max length; money is a decimal string, never a JSON number."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr, StringConstraints

from app.core.conversion import RATE_PATTERN
from app.core.money import MONEY_PATTERN, SIGNED_MONEY_PATTERN
from app.core.splits import MAX_PARTICIPANTS, PERCENTAGE_PATTERN


def _storable(value: str) -> str:
    """PostgreSQL text cannot hold NUL: reject it as a 422 instead of failing the INSERT with a 500."""
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000) characters")
    return value


Storable = AfterValidator(_storable)
Name = Annotated[StrictStr, StringConstraints(min_length=1, max_length=100, pattern=r"\S"), Storable]
Email = Annotated[StrictStr, StringConstraints(max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"), Storable]
CurrencyCode = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Z]{3}$")]
Description = Annotated[StrictStr, StringConstraints(min_length=1, max_length=500, pattern=r"\S"), Storable]
Note = Annotated[StrictStr, StringConstraints(max_length=500), Storable]
# The money grammar itself (and the currency's decimals) is checked by app.money; this bounds the size.
# `json_schema_extra` patterns document the grammar without changing validation (app.money owns it).
MoneyStr = Annotated[
    StrictStr,
    Field(
        max_length=40,
        description=(
            'Decimal string in the group\'s currency, e.g. "12.34" (USD), "100" (JPY), "1.500" (KWD): no sign, '
            "exponent, whitespace or leading zeros, at most the currency's decimals, at most 10^12 minor units. "
            "Never a JSON number."
        ),
        examples=["12.34"],
        json_schema_extra={"pattern": MONEY_PATTERN},
    ),
]
Amount = Annotated[
    str,
    Field(
        description="Decimal string with the currency's full number of decimals.",
        examples=["10.50"],
        json_schema_extra={"pattern": MONEY_PATTERN},
    ),
]
SignedMoney = Annotated[
    str,
    Field(
        description="Signed decimal string with the currency's full decimals; negative amounts start with `-`.",
        examples=["-10.50"],
        json_schema_extra={"pattern": SIGNED_MONEY_PATTERN},
    ),
]
RateStr = Annotated[
    StrictStr,
    Field(
        max_length=21,
        description=(
            "Units of the group's currency per one unit of the expense's `currency`: a decimal string, at most "
            "9 digits and 10 decimals, greater than 0. Required when `currency` differs from the group's; "
            "absent or exactly 1 otherwise."
        ),
        examples=["1.0850"],
        json_schema_extra={"pattern": RATE_PATTERN},
    ),
]
DateStr = Annotated[
    StrictStr,
    Field(
        description="A calendar date, `YYYY-MM-DD` (UTC), between 1900-01-01 and 2999-12-31.",
        examples=["2026-11-30"],
        json_schema_extra={"pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "format": "date"},
        max_length=10,
    ),
]
Category = Annotated[StrictStr, StringConstraints(min_length=1, max_length=50, pattern=r"\S"), Storable]
Notes = Annotated[StrictStr, StringConstraints(max_length=2000), Storable]
MAX_PAYERS = 50
T = TypeVar("T")
SplitType = Literal["equal", "percentage", "exact", "shares"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Password = Annotated[
    StrictStr,
    StringConstraints(min_length=8, max_length=128),
    Storable,
    Field(
        description=(
            "8..128 characters; not one repeated character, a plain run (12345678, abcdefgh), the email or its "
            "part before @, or a very common password (422). Stored as an Argon2id hash, never returned."
        )
    ),
]


class UserCreate(Strict):
    name: Name
    email: Email
    password: Password | None = None


class UserOut(BaseModel):
    id: UUID
    name: str
    email: str
    created_at: datetime


class UserCreated(UserOut):
    api_token: str = Field(description="Shown only in this response; stored hashed.")


class GroupCreate(Strict):
    name: Name
    currency: CurrencyCode = Field(description="Active ISO 4217 code, e.g. USD", examples=["USD", "JPY", "KWD"])


class MemberOut(BaseModel):
    user_id: UUID
    name: str
    email: str | None = Field(description="null for a guest")
    guest: bool = Field(description="a person without an account, added by name")


class GroupOut(BaseModel):
    id: UUID
    name: str
    currency: str
    created_by: UUID
    created_at: datetime


class GroupDetail(GroupOut):
    members: list[MemberOut]


class MemberAdd(Strict):
    """Exactly one: a registered user by `user_id` or `email`, or a guest by `name` alone."""

    user_id: UUID | None = None
    email: Email | None = None
    name: Name | None = None


class InviteOut(BaseModel):
    invite_code: str = Field(description="Single use; shown only here. `POST /v1/users/claim` takes it.")
    expires_at: datetime


class ClaimIn(Strict):
    invite_code: Annotated[StrictStr, StringConstraints(min_length=1, max_length=100)]
    email: Email
    name: Name | None = None
    password: Password | None = None


class ActivityOut(BaseModel):
    id: UUID
    type: str
    actor_id: UUID
    created_at: datetime
    expense_id: UUID | None
    settlement_id: UUID | None
    user_id: UUID | None
    detail: dict[str, object] | None = Field(description="Extra facts, e.g. why a recurring rule stopped.")


class MembersOut(BaseModel):
    members: list[MemberOut]


class ParticipantIn(Strict):
    user_id: UUID
    percentage: (
        Annotated[
            StrictStr,
            Field(
                max_length=20,
                description="split_type percentage: decimal string, at most 4 decimals, 0 < p <= 100; all sum to 100.",
                examples=["33.33"],
                json_schema_extra={"pattern": PERCENTAGE_PATTERN},
            ),
        ]
        | None
    ) = None
    amount: MoneyStr | None = None
    shares: (
        Annotated[
            StrictInt,
            Field(
                description="split_type shares: a positive JSON integer (not a string, not 2.0), at most 10^6.",
                json_schema_extra={"minimum": 1, "maximum": 1_000_000},
            ),
        ]
        | None
    ) = None


class PayerIn(Strict):
    user_id: UUID
    amount: MoneyStr


class ExpenseFields(Strict):
    """An expense body without its date: what a recurring rule repeats (app.domain.recurring_schemas)."""

    description: Description
    amount: MoneyStr
    currency: CurrencyCode | None = Field(default=None, description="Default: the group's currency.")
    exchange_rate: RateStr | None = None
    paid_by: UUID | None = Field(default=None, description="One payer paying all; give this or `payers`.")
    payers: Annotated[list[PayerIn], Field(min_length=1, max_length=MAX_PAYERS)] | None = Field(
        default=None, description="1..50 distinct members whose amounts sum to `amount`; give this or `paid_by`."
    )
    split_type: SplitType
    participants: Annotated[list[ParticipantIn], Field(min_length=1, max_length=MAX_PARTICIPANTS)]
    category: Category | None = None
    notes: Notes | None = None


class ExpenseIn(ExpenseFields):
    date: DateStr | None = Field(default=None, description="Default: today (UTC) on create; unchanged on edit.")


class ShareOut(BaseModel):
    user_id: UUID
    amount: Amount


class ExpenseOut(BaseModel):
    id: UUID
    group_id: UUID
    description: str
    amount: Amount = Field(description="As entered, in `currency`.")
    currency: str
    exchange_rate: str | None = Field(description="As entered; null in the group's currency.")
    group_amount: Amount = Field(description="The total in the group's currency (what the ledger posts).")
    paid_by: UUID | None = Field(description="The payer when there is exactly one, else null.")
    payers: list[ShareOut] = Field(description="What each payer paid, in the group's currency.")
    split_type: SplitType
    shares: list[ShareOut] = Field(description="What each participant owes, in the group's currency.")
    date: str
    category: str | None
    notes: str | None
    version: int
    created_by: UUID
    created_at: datetime
    updated_by: UUID
    updated_at: datetime
    voided_at: datetime | None
    recurring_id: UUID | None = Field(description="The recurring rule this expense is an occurrence of, else null.")


class SettlementIn(Strict):
    from_user_id: UUID
    to_user_id: UUID
    amount: MoneyStr
    note: Note | None = None


class SettlementOut(BaseModel):
    id: UUID
    group_id: UUID
    from_user_id: UUID
    to_user_id: UUID
    amount: Amount
    currency: str
    note: str | None
    created_by: UUID
    created_at: datetime
    voided_at: datetime | None


class BalanceOut(BaseModel):
    user_id: UUID
    net: SignedMoney


class PaymentOut(BaseModel):
    from_user_id: UUID
    to_user_id: UUID
    amount: Amount


class BalancesOut(BaseModel):
    currency: str
    balances: list[BalanceOut]
    suggested_payments: list[PaymentOut]


class LedgerEntryOut(BaseModel):
    id: UUID
    user_id: UUID
    amount: SignedMoney
    kind: Literal["expense", "reversal", "settlement"]
    expense_id: UUID | None
    settlement_id: UUID | None
    created_at: datetime


class Versions(BaseModel):
    items: list[ExpenseOut]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]


class Readiness(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]
    migrations: Literal["ok", "pending", "unknown"]
    revision: str | None = Field(default=None, description="The schema's revision (when not at the head).")
    head: str | None = Field(default=None, description="The head of this code's migrations (when not ready).")
