"""initial schema: users, groups, memberships, expenses, settlements, ledger, idempotency keys

Revision ID: a1c0e5f3b001
Revises:
Create Date: 2026-11-26 03:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a1c0e5f3b001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MAX_MINOR = "1000000000000"


def _created_at() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("token_hash", name="uq_users_token_hash"),
    )
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)

    op.create_table(
        "groups",
        sa.Column("id", sa.Uuid()),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_groups"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name="fk_groups_created_by_users"),
    )
    op.create_index("ix_groups_created_at_id", "groups", ["created_at", "id"])

    op.create_table(
        "memberships",
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("net_minor", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("group_id", "user_id", name="pk_memberships"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_memberships_group_id_groups"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_memberships_user_id_users"),
    )
    op.create_index("ix_memberships_user_id_group_id", "memberships", ["user_id", "group_id"])

    op.create_table(
        "expenses",
        sa.Column("id", sa.Uuid()),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("paid_by", sa.Uuid(), nullable=False),
        sa.Column("split_type", sa.String(16), nullable=False),
        sa.Column("shares", postgresql.JSONB(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_expenses"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_expenses_group_id_groups"),
        sa.ForeignKeyConstraint(["paid_by"], ["users.id"], name="fk_expenses_paid_by_users"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name="fk_expenses_created_by_users"),
        sa.CheckConstraint(f"amount_minor > 0 AND amount_minor <= {MAX_MINOR}", name="ck_expenses_amount_range"),
        sa.CheckConstraint(
            "split_type IN ('equal', 'percentage', 'exact', 'shares')", name="ck_expenses_split_type"
        ),
        sa.CheckConstraint("version >= 1", name="ck_expenses_version_positive"),
    )
    op.create_index("ix_expenses_group_id_created_at_id", "expenses", ["group_id", "created_at", "id"])

    op.create_table(
        "settlements",
        sa.Column("id", sa.Uuid()),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("from_user_id", sa.Uuid(), nullable=False),
        sa.Column("to_user_id", sa.Uuid(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_settlements"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_settlements_group_id_groups"),
        sa.ForeignKeyConstraint(["from_user_id"], ["users.id"], name="fk_settlements_from_user_id_users"),
        sa.ForeignKeyConstraint(["to_user_id"], ["users.id"], name="fk_settlements_to_user_id_users"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name="fk_settlements_created_by_users"),
        sa.CheckConstraint(f"amount_minor > 0 AND amount_minor <= {MAX_MINOR}", name="ck_settlements_amount_range"),
        sa.CheckConstraint("from_user_id <> to_user_id", name="ck_settlements_distinct_parties"),
    )
    op.create_index("ix_settlements_group_id_created_at_id", "settlements", ["group_id", "created_at", "id"])

    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True)),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("posting_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("expense_id", sa.Uuid(), nullable=True),
        sa.Column("expense_version", sa.Integer(), nullable=True),
        sa.Column("settlement_id", sa.Uuid(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("seq", name="pk_ledger_entries"),
        sa.UniqueConstraint("id", name="uq_ledger_entries_id"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_ledger_entries_group_id_groups"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_ledger_entries_user_id_users"),
        sa.ForeignKeyConstraint(["expense_id"], ["expenses.id"], name="fk_ledger_entries_expense_id_expenses"),
        sa.ForeignKeyConstraint(
            ["settlement_id"], ["settlements.id"], name="fk_ledger_entries_settlement_id_settlements"
        ),
        sa.CheckConstraint("kind IN ('expense', 'reversal', 'settlement')", name="ck_ledger_entries_kind"),
        sa.CheckConstraint(
            "(kind = 'settlement') = (settlement_id IS NOT NULL)"
            " AND (kind <> 'settlement') = (expense_id IS NOT NULL AND expense_version IS NOT NULL)",
            name="ck_ledger_entries_kind_refs",
        ),
    )
    op.create_index("ix_ledger_entries_group_id_seq", "ledger_entries", ["group_id", "seq"])
    op.create_index(
        "ix_ledger_entries_expense_id_expense_version", "ledger_entries", ["expense_id", "expense_version"]
    )
    op.create_index("ix_ledger_entries_group_id_user_id", "ledger_entries", ["group_id", "user_id"])
    op.execute(
        """
        CREATE FUNCTION ledger_entries_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger entries are immutable: % refused', TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON ledger_entries"
        " FOR EACH ROW EXECUTE FUNCTION ledger_entries_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries"
        " FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_refuse_change()"
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(32), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("user_id", "key", name="pk_idempotency_keys"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_idempotency_keys_user_id_users"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.execute("DROP TRIGGER ledger_entries_no_truncate ON ledger_entries")
    op.execute("DROP TRIGGER ledger_entries_immutable ON ledger_entries")
    op.drop_table("ledger_entries")
    op.execute("DROP FUNCTION ledger_entries_refuse_change()")
    op.drop_table("settlements")
    op.drop_table("expenses")
    op.drop_table("memberships")
    op.drop_table("groups")
    op.drop_table("users")
