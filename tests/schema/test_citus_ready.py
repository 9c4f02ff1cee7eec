"""The schema stays ready for Citus with group_id as the distribution column (docs/scaling.md, section 4).

Read from pg_catalog at head:
- the group-scoped tables are every table with a group_id column, and groups itself (by its id);
- every primary key and unique constraint or index of one of them includes its group column (Citus checks
  uniqueness on one shard only);
- every foreign key between two of them pairs group column with group column (no foreign key joins two
  groups' rows), and every other foreign key of theirs points at a reference table (users); no other
  table references a group-scoped one.
And, by running them: no transaction of the API's writes (every write function in app/sql among them)
writes rows of two groups (tests/schema/test_one_group_per_write.py).
"""

from __future__ import annotations

from sqlalchemy.engine import URL

from tests.dbutil import run_sql

REFERENCE_TABLES = {"users"}  # replicated to every node
# User-scoped tables: distributed by their user (or kept on the coordinator), never joined to a group's rows.
USER_SCOPED = {"api_tokens", "login_failures", "idempotency_keys"}

TABLES = """
SELECT c.relname AS name,
       CASE WHEN c.relname = 'groups' THEN 'id' ELSE 'group_id' END AS group_column
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND (c.relname = 'groups' OR EXISTS (
    SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'group_id' AND NOT a.attisdropped))
ORDER BY 1
"""
UNIQUE_INDEXES = """
SELECT t.relname AS tbl, i.relname AS idx, pg_get_indexdef(i.oid) AS def,
       ARRAY(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
             WHERE k.n <= x.indnkeyatts ORDER BY k.n) AS cols
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = 'public' AND x.indisunique AND t.relname = ANY($1::text[])
"""
FOREIGN_KEYS = """
SELECT c.conname, s.relname AS src, r.relname AS dst,
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.n) AS src_cols,
       ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.n) AS dst_cols
FROM pg_constraint c JOIN pg_class s ON s.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid
JOIN pg_namespace n ON n.oid = s.relnamespace
WHERE c.contype = 'f' AND n.nspname = 'public'
"""


def group_scoped(db_url: URL) -> dict[str, str]:
    """Table → its group column (the distribution column under Citus)."""
    return {r["name"]: r["group_column"] for r in run_sql(db_url, TABLES)}


def test_the_group_scoped_tables_are_the_ones_docs_scaling_lists(db_url: URL) -> None:
    tables = group_scoped(db_url)
    assert set(tables) >= {
        "groups", "memberships", "balances", "ledger_chains", "ledger_entries", "expenses", "expense_versions",
        "settlements", "activity", "recurring_rules", "invites",
    }  # fmt: skip
    assert not set(tables) & (REFERENCE_TABLES | USER_SCOPED)
    types = run_sql(
        db_url,
        "SELECT c.relname, a.attnotnull, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relname = ANY($1::text[]) AND a.attname = ANY($2::text[])",
        list(tables), ["group_id", "id"],
    )  # fmt: skip
    columns = {(r["relname"], r["type"], r["attnotnull"]) for r in types}
    for table in tables:  # one type for colocation, never null
        assert (table, "uuid", True) in columns, table


def test_every_unique_key_of_a_group_scoped_table_includes_group_id(db_url: URL) -> None:
    tables = group_scoped(db_url)
    indexes = run_sql(db_url, UNIQUE_INDEXES, list(tables))
    assert {r["tbl"] for r in indexes} == set(tables)  # every one has a primary key at least
    missing = [r["def"] for r in indexes if tables[r["tbl"]] not in r["cols"]]
    assert missing == [], "unique keys without the distribution column (Citus cannot check them):\n" + "\n".join(
        missing
    )


def test_no_foreign_key_joins_two_groups_rows(db_url: URL) -> None:
    tables = group_scoped(db_url)
    wrong: list[str] = []
    for fk in run_sql(db_url, FOREIGN_KEYS):
        src, dst, pairs = fk["src"], fk["dst"], list(zip(fk["src_cols"], fk["dst_cols"]))
        if src in tables and dst in tables:
            if (tables[src], tables[dst]) not in pairs:
                wrong.append(f"{fk['conname']}: {src}{fk['src_cols']} -> {dst}{fk['dst_cols']} not through group_id")
        elif src in tables and dst not in REFERENCE_TABLES:
            wrong.append(f"{fk['conname']}: {src} -> {dst}, neither group-scoped nor a reference table")
        elif src not in tables and dst in tables:
            wrong.append(f"{fk['conname']}: {src} (not group-scoped) -> {dst} (group-scoped)")
    assert wrong == []
