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

from collections.abc import Sequence

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
# quits_post with time-ordered entry ids (upgrade) and as migration c3e5a7b9d003 created it (downgrade):
# frozen copies, so this migration never loads or patches another.
POST_ORDERED_IDS = """
CREATE OR REPLACE FUNCTION quits_post(
    p_group uuid, p_users uuid[], p_amounts bigint[], p_kind text,
    p_expense_id uuid, p_expense_version int, p_settlement_id uuid, p_slot int
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_posting uuid := gen_random_uuid();
    v_moved int;
BEGIN
    IF (SELECT coalesce(sum(a), 1) FROM unnest(p_amounts) a) <> 0 THEN
        RAISE EXCEPTION 'posting does not sum to zero' USING ERRCODE = 'QU500';
    END IF;
    INSERT INTO ledger_entries
        (id, posting_id, group_id, user_id, amount_minor, kind, expense_id, expense_version, settlement_id)
    SELECT quits_uuid7(), v_posting, p_group, t.u, t.a, p_kind, p_expense_id, p_expense_version,
           p_settlement_id
    FROM unnest(p_users, p_amounts) WITH ORDINALITY AS t(u, a, n)
    ORDER BY t.n;
    UPDATE balances b SET net_minor = b.net_minor + d.delta
    FROM (SELECT t.u, sum(t.a) AS delta FROM unnest(p_users, p_amounts) AS t(u, a) GROUP BY t.u) d
    WHERE b.group_id = p_group AND b.user_id = d.u AND b.slot = p_slot;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    IF v_moved <> (SELECT count(DISTINCT u) FROM unnest(p_users) u) THEN
        RAISE EXCEPTION 'posting touched a user without a balance row' USING ERRCODE = 'QU500';
    END IF;
END $$
"""

POST_RANDOM_IDS = """
CREATE OR REPLACE FUNCTION quits_post(
    p_group uuid, p_users uuid[], p_amounts bigint[], p_kind text,
    p_expense_id uuid, p_expense_version int, p_settlement_id uuid, p_slot int
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_posting uuid := gen_random_uuid();
    v_moved int;
BEGIN
    IF (SELECT coalesce(sum(a), 1) FROM unnest(p_amounts) a) <> 0 THEN
        RAISE EXCEPTION 'posting does not sum to zero' USING ERRCODE = 'QU500';
    END IF;
    INSERT INTO ledger_entries
        (id, posting_id, group_id, user_id, amount_minor, kind, expense_id, expense_version, settlement_id)
    SELECT gen_random_uuid(), v_posting, p_group, t.u, t.a, p_kind, p_expense_id, p_expense_version,
           p_settlement_id
    FROM unnest(p_users, p_amounts) WITH ORDINALITY AS t(u, a, n)
    ORDER BY t.n;
    UPDATE balances b SET net_minor = b.net_minor + d.delta
    FROM (SELECT t.u, sum(t.a) AS delta FROM unnest(p_users, p_amounts) AS t(u, a) GROUP BY t.u) d
    WHERE b.group_id = p_group AND b.user_id = d.u AND b.slot = p_slot;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    IF v_moved <> (SELECT count(DISTINCT u) FROM unnest(p_users) u) THEN
        RAISE EXCEPTION 'posting touched a user without a balance row' USING ERRCODE = 'QU500';
    END IF;
END $$
"""


def upgrade() -> None:
    native = op.get_bind().exec_driver_sql("SHOW server_version_num").scalar_one()
    body = UUID7_NATIVE if int(native) >= 180000 else UUID7_PORTABLE
    op.execute(f"CREATE FUNCTION quits_uuid7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$ {body} $$")
    op.execute(POST_ORDERED_IDS)
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
    op.execute(POST_RANDOM_IDS)
    op.execute("DROP FUNCTION quits_uuid7()")
