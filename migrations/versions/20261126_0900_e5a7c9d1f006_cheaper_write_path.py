"""cheaper write path: single-column checks as domains, time-ordered ledger entry ids

Measured by counting the instructions of one PostgreSQL backend (callgrind, single-user mode) over
500 calls of quits_create_expense; bench/README.md shows how.

1. Domains instead of single-column CHECK constraints. PostgreSQL re-reads and re-plans every CHECK
   constraint of a table from its stored text each time a statement writes to the table; each write
   function statement paid that again (about 11% of the backend's instructions per expense). A
   domain's constraint is parsed once per backend and cached, and it is not evaluated for columns an
   UPDATE leaves alone (balances.slot). The rules are the same; only where they live moves. The one
   multi-column rule of each table (ledger_entries' kind_refs, settlements' distinct_parties) stays
   a table constraint.
2. Ledger entry ids are UUID version 7 (time-ordered), like the ids the service now generates for
   users, groups, expenses and settlements (app.ids). A random id lands on a random leaf of its
   unique index; a time-ordered one on the rightmost leaf, which PostgreSQL keeps cached (about 7% of
   the backend's instructions per expense). quits_uuid7() is uuidv7() on PostgreSQL 18 and an
   equivalent expression on older servers.

Revision ID: e5a7c9d1f006
Revises: d4f6b8c0e005
Create Date: 2026-11-26 09:00:00+00:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "e5a7c9d1f006"
down_revision: str | None = "d4f6b8c0e005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MAX_MINOR = 10**12  # app.money.MAX_MINOR when this migration was written

# Each domain: its base type and rule; then the columns that take it, with the table constraint it replaces.
DOMAINS = {
    "quits_amount_minor": ("bigint", f"VALUE > 0 AND VALUE <= {MAX_MINOR}"),
    "quits_split_type": ("varchar(16)", "VALUE IN ('equal', 'percentage', 'exact', 'shares')"),
    "quits_version": ("integer", "VALUE >= 1"),
    "quits_entry_kind": ("varchar(16)", "VALUE IN ('expense', 'reversal', 'settlement')"),
    "quits_balance_slot": ("smallint", "VALUE >= 0 AND VALUE < 8"),
}
COLUMNS = [
    ("expenses", "amount_minor", "quits_amount_minor", "ck_expenses_ck_expenses_amount_range"),
    ("expenses", "split_type", "quits_split_type", "ck_expenses_ck_expenses_split_type"),
    ("expenses", "version", "quits_version", "ck_expenses_ck_expenses_version_positive"),
    ("settlements", "amount_minor", "quits_amount_minor", "ck_settlements_ck_settlements_amount_range"),
    ("ledger_entries", "kind", "quits_entry_kind", "ck_ledger_entries_ck_ledger_entries_kind"),
    ("balances", "slot", "quits_balance_slot", "ck_balances_slot"),
]

UUID7_NATIVE = "SELECT uuidv7()"
# A v4 UUID with its first 48 bits replaced by Unix milliseconds and its version nibble 4 -> 7.
UUID7_PORTABLE = (
    "SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())"
    " PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)"
    " FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"
)
RANDOM_ENTRY_ID = "SELECT gen_random_uuid(), v_posting"
ORDERED_ENTRY_ID = "SELECT quits_uuid7(), v_posting"


def _balance_slots_post() -> str:
    """quits_post as migration c3e5a7b9d003 created it (this one swaps its entry-id expression)."""
    path = Path(__file__).with_name("20261126_0600_c3e5a7b9d003_balance_slots.py")
    spec = importlib.util.spec_from_file_location("quits_migration_c3e5a7b9d003", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    post: str = module.POST.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    assert RANDOM_ENTRY_ID in post, "quits_post's entry-id expression was not found"
    return post


def upgrade() -> None:
    native = op.get_bind().exec_driver_sql("SHOW server_version_num").scalar_one()
    body = UUID7_NATIVE if int(native) >= 180000 else UUID7_PORTABLE
    op.execute(f"CREATE FUNCTION quits_uuid7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$ {body} $$")
    op.execute(_balance_slots_post().replace(RANDOM_ENTRY_ID, ORDERED_ENTRY_ID))
    for name, (base, rule) in DOMAINS.items():
        op.execute(f"CREATE DOMAIN {name} AS {base} CONSTRAINT {name}_check CHECK ({rule})")
    for table, column, domain, constraint in COLUMNS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}, ALTER COLUMN {column} TYPE {domain}")


def downgrade() -> None:
    for table, column, domain, constraint in COLUMNS:
        base, rule = DOMAINS[domain]
        op.execute(
            f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {base},"
            f" ADD CONSTRAINT {constraint} CHECK ({rule.replace('VALUE', column)})"
        )
    for name in DOMAINS:
        op.execute(f"DROP DOMAIN {name}")
    op.execute(_balance_slots_post())
    op.execute("DROP FUNCTION quits_uuid7()")
