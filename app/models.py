"""Table definitions. Queries use SQLAlchemy Core over these tables (no ORM sessions)."""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import DOMAIN, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.core.money import MAX_MINOR

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Single-column rules live in domains (migration e5a7c9d1f006 says why); rules over several columns
# stay table CHECK constraints. quits_amount_minor's bound is app.core.money.MAX_MINOR.
AMOUNT_MINOR = DOMAIN("quits_amount_minor", BigInteger(), check=f"VALUE > 0 AND VALUE <= {MAX_MINOR}")
SPLIT_TYPE = DOMAIN("quits_split_type", String(16), check="VALUE IN ('equal', 'percentage', 'exact', 'shares')")
VERSION = DOMAIN("quits_version", Integer(), check="VALUE >= 1")
ENTRY_KIND = DOMAIN("quits_entry_kind", String(16), check="VALUE IN ('expense', 'reversal', 'settlement')")
BALANCE_SLOT = DOMAIN("quits_balance_slot", SmallInteger(), check="VALUE >= 0 AND VALUE < quits_balance_slots()")



class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class User(Base):
    __tablename__ = "users"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)  # null for a guest only
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)  # Argon2id; NULL: none set
    guest: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    created_at: Mapped[datetime] = _now()
    __table_args__ = (
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        CheckConstraint("guest OR email IS NOT NULL", name="email_unless_guest"),
    )


class Invite(Base):
    """A single-use code (stored as its SHA-256) that lets a guest's person claim their place. Keyed by
    (group_id, code_hash) like every group's row (migration d1a3c5e7f012); a claim, which has only the code,
    finds it by ix_invites_code_hash (32 random bytes: unique without a constraint)."""

    __tablename__ = "invites"
    code_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, index=True)
    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("groups.id"), nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_by: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (PrimaryKeyConstraint("group_id", "code_hash"),)


class ApiToken(Base):
    """A user's named API token, stored as the SHA-256 of the token. Revoked tokens stay (revoked_at set)."""

    __tablename__ = "api_tokens"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    created_at: Mapped[datetime] = _now()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (
        Index("ix_api_tokens_user_id_created_at", "user_id", "created_at", postgresql_where=text("revoked_at IS NULL")),
    )


class LoginFailure(Base):
    """Failed logins of one account or one client address (subject: a SHA-256) in the current window."""

    __tablename__ = "login_failures"
    subject: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)


class Group(Base):
    __tablename__ = "groups"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_at: Mapped[datetime] = _now()
    __table_args__ = (Index("ix_groups_created_at_id", "created_at", "id"),)


class Membership(Base):
    """A current member. Their net is the sum of their Balance slots (the view member_balances)."""

    __tablename__ = "memberships"
    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("groups.id"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    joined_at: Mapped[datetime] = _now()
    __table_args__ = (Index("ix_memberships_user_id_group_id", "user_id", "group_id"),)


class Balance(Base):
    """One of a member's balance rows (quits_balance_slots() of them); they sum to the member's ledger entries.

    Created with the membership (trigger) and deleted with it (cascade). Migration c3e5a7b9d003 says why
    a net is split over slots and in which order writers lock them."""

    __tablename__ = "balances"
    group_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    slot: Mapped[int] = mapped_column(BALANCE_SLOT, primary_key=True)
    net_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    __table_args__ = (
        ForeignKeyConstraint(
            ["group_id", "user_id"],
            ["memberships.group_id", "memberships.user_id"],
            name="fk_balances_membership",
            ondelete="CASCADE",
        ),
        {"postgresql_with": {"fillfactor": 50}},
    )


# Every key of a group's rows includes group_id, the distribution column of the way to Citus
# (docs/scaling.md; migration d1a3c5e7f012; tests/schema/test_citus_ready.py).
class Expense(Base):
    __tablename__ = "expenses"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("groups.id"), nullable=False)
    description: Mapped[str] = mapped_column(String(500), nullable=False)
    # As entered: the amount in the expense's currency, and the rate to the group's (null when equal).
    amount_minor: Mapped[int] = mapped_column(AMOUNT_MINOR, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    exchange_rate: Mapped[str | None] = mapped_column(String(21), nullable=True)
    # What the ledger posts, in the group's currency: the total, who paid and who owes what
    # ([[user_id, minor], ...] ascending user_id, each summing to group_amount_minor).
    group_currency: Mapped[str] = mapped_column(String(3), nullable=False)
    group_amount_minor: Mapped[int] = mapped_column(AMOUNT_MINOR, nullable=False)
    paid_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), nullable=True)  # the one payer
    payers: Mapped[list[list[object]]] = mapped_column(JSONB, nullable=False)
    split_type: Mapped[str] = mapped_column(SPLIT_TYPE, nullable=False)
    shares: Mapped[list[list[object]]] = mapped_column(JSONB, nullable=False)
    date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    category: Mapped[str | None] = mapped_column(String(50), nullable=True)
    notes: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    version: Mapped[int] = mapped_column(VERSION, nullable=False, server_default="1")
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_by: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # An occurrence of a recurring rule: the rule and the occurrence's date as scheduled (`date` may be
    # edited later; occurrence_date never is). Each (rule, date) is at most one expense.
    recurring_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    occurrence_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    __table_args__ = (
        PrimaryKeyConstraint("group_id", "id"),
        ForeignKeyConstraint(
            ["group_id", "recurring_id"],
            ["recurring_rules.group_id", "recurring_rules.id"],
            name="fk_expenses_recurring_rule",
        ),
        Index("ix_expenses_group_id_created_at_id", "group_id", "created_at", "id"),
        Index(
            "uq_expenses_group_id_recurring_id_occurrence_date",
            "group_id",
            "recurring_id",
            "occurrence_date",
            unique=True,
            postgresql_where=text("recurring_id IS NOT NULL"),
        ),
        CheckConstraint("(recurring_id IS NULL) = (occurrence_date IS NULL)", name="occurrence"),
    )


class RecurringRule(Base):
    """A recurring expense: the expense body to repeat (`template`, as validated and normalised) and its
    schedule (app.core.calendar). `next_index`/`next_date` are the next occurrence to make; `last_date`
    the last one made or skipped (an edit never makes a date on or before it again). `version` changes
    with every change of state (edit, skip, stop, each occurrence made); `claimed_until` is a
    scheduler's lease (app.domain.recurring_scheduler), never needed for correctness. No DELETE: a
    stopped rule stays, inactive, with its reason."""

    __tablename__ = "recurring_rules"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("groups.id"), nullable=False)
    template: Mapped[dict[str, object]] = mapped_column(JSONB, nullable=False)
    every: Mapped[str] = mapped_column(String(5), nullable=False)
    repeat_interval: Mapped[int] = mapped_column(Integer, nullable=False)
    start_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    end_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_index: Mapped[int] = mapped_column(Integer, nullable=False)
    next_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    last_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False)
    stop_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    version: Mapped[int] = mapped_column(VERSION, nullable=False)
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_by: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (
        PrimaryKeyConstraint("group_id", "id"),
        CheckConstraint(
            "every IN ('day', 'week', 'month', 'year') AND repeat_interval BETWEEN 1 AND 366"
            " AND (count IS NULL OR count BETWEEN 1 AND 10000) AND (count IS NULL OR end_date IS NULL)"
            " AND (end_date IS NULL OR end_date >= start_date)",
            name="schedule",
        ),
        CheckConstraint(
            "next_index >= 0 AND active = (next_date IS NOT NULL) AND active = (stop_reason IS NULL)"
            " AND active = (stopped_at IS NULL) AND (next_date IS NULL OR last_date IS NULL OR next_date > last_date)",
            name="state",
        ),
        Index("ix_recurring_rules_next_date_id", "next_date", "id", postgresql_where=text("active")),
        Index("ix_recurring_rules_group_id_created_at_id", "group_id", "created_at", "id"),
    )


class Settlement(Base):
    __tablename__ = "settlements"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("groups.id"), nullable=False)
    from_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    to_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    amount_minor: Mapped[int] = mapped_column(AMOUNT_MINOR, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (
        PrimaryKeyConstraint("group_id", "id"),
        CheckConstraint("from_user_id <> to_user_id", name="distinct_parties"),
        Index("ix_settlements_group_id_created_at_id", "group_id", "created_at", "id"),
    )


class LedgerEntry(Base):
    """Immutable: a trigger refuses UPDATE, DELETE and TRUNCATE.

    No foreign keys (migration d4f6b8c0e005 says why): the only writer, quits_post, runs with every
    user's balance slot locked and after inserting the cited expense or settlement; `python -m
    app.verify` reports any entry whose group, user, expense or settlement is missing."""

    __tablename__ = "ledger_entries"
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), nullable=False)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    posting_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    group_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(ENTRY_KIND, nullable=False)
    expense_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    expense_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    settlement_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = _now()
    # Tamper evidence (migration c9e1f3a5b011): the entry's hash chain (one per group and balance slot)
    # and its hash, SHA-256 of the previous entry's hash and this entry's fields (quits_entry_hash).
    chain_slot: Mapped[int] = mapped_column(BALANCE_SLOT, nullable=False)
    chain_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    __table_args__ = (
        # The rule (one of expense or settlement cited, matching the kind) is app/sql/quits_entry_refs_ok.sql.
        CheckConstraint("quits_entry_refs_ok(kind, expense_id, expense_version, settlement_id)", name="kind_refs"),
        PrimaryKeyConstraint("group_id", "seq"),
        UniqueConstraint("group_id", "id"),
        Index("ix_ledger_entries_expense_id_expense_version", "expense_id", "expense_version"),
    )


class LedgerChain(Base):
    """The head of one of a group's ledger hash chains (one per balance slot) and its length."""

    __tablename__ = "ledger_chains"
    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("groups.id"), primary_key=True)
    slot: Mapped[int] = mapped_column(BALANCE_SLOT, primary_key=True)
    head: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    entries: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")


class ExpenseVersion(Base):
    """A superseded version of an expense, as the API rendered it. Append-only (trigger)."""

    __tablename__ = "expense_versions"
    group_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    expense_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    version: Mapped[int] = mapped_column(VERSION, primary_key=True)
    doc: Mapped[dict[str, object]] = mapped_column(JSONB, nullable=False)
    updated_by: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Activity(Base):
    """Who did what and when in a group, newest first by (created_at, id). Append-only (trigger)."""

    __tablename__ = "activity"
    group_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True, server_default=func.now())
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    actor_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    expense_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    settlement_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    detail: Mapped[dict[str, object] | None] = mapped_column(JSONB, nullable=True)


class IdempotencyKey(Base):
    """Written in the same transaction as the financial write it remembers."""

    __tablename__ = "idempotency_keys"
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    status_code: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    response_body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _now()
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)
