"""ledger entries without foreign keys, and without the unused (group_id, user_id) index

Each foreign key on ledger_entries cost every posted entry a lookup plus a FOR KEY SHARE row lock on
the referenced group, user and expense rows; in a busy group many writers share-lock the same rows,
which makes PostgreSQL create a MultiXact for nearly every lock. Measured with pgbench calling
quits_create_expense directly (8 clients, 64 groups): about 25% more writes per second without them.

What they guaranteed still holds by construction, and is checked after the fact:
- ledger entries are written only by quits_post, after every user of the posting had a balance slot
  locked; a balance slot exists only for a current membership, whose own foreign keys name an
  existing user and group;
- the expense or settlement an entry cites is inserted by the same statement, just before;
- users, groups, expenses and settlements are never deleted, and ledger entries never change;
- `python -m app.verify` (app.ledger.find_drift) reports any entry whose group, user, expense or
  settlement is missing.

Revision ID: d4f6b8c0e005
Revises: c3e5a7b9d003
Create Date: 2026-11-26 07:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "d4f6b8c0e005"
down_revision: str | None = "c3e5a7b9d003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEYS = [
    ("fk_ledger_entries_group_id_groups", "group_id", "groups"),
    ("fk_ledger_entries_user_id_users", "user_id", "users"),
    ("fk_ledger_entries_expense_id_expenses", "expense_id", "expenses"),
    ("fk_ledger_entries_settlement_id_settlements", "settlement_id", "settlements"),
]


def upgrade() -> None:
    for name, _, _ in FOREIGN_KEYS:
        op.drop_constraint(name, "ledger_entries", type_="foreignkey")
    op.drop_index("ix_ledger_entries_group_id_user_id", table_name="ledger_entries")


def downgrade() -> None:
    op.create_index("ix_ledger_entries_group_id_user_id", "ledger_entries", ["group_id", "user_id"])
    for name, column, table in FOREIGN_KEYS:
        op.create_foreign_key(name, "ledger_entries", table, [column], ["id"])
