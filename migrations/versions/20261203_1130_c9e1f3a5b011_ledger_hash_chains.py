"""ledger hash chains: tamper evidence for the ledger, one chain per group and balance slot

Each ledger entry carries `chain_hash` = SHA-256 of the previous entry's hash in its chain and its
own fields (quits_entry_hash), and `chain_slot`, the chain it belongs to: each group has one chain
per balance slot, so writes to different slots of a busy group never wait on each other for it (a
single chain per group would serialise them again). `ledger_chains` holds each chain's head and
length; quits_post locks the head row last (after the balance rows), appends and moves the head, in
the same statement as the entries. `python -m app.verify` walks every chain and names the first
entry whose hash does not follow.

Existing entries join chain 0 of their group in `seq` order; their hashes are computed here with the
immutability trigger off for this migration only. A new group gets its chains from a trigger.

Revision ID: c9e1f3a5b011
Revises: b8d0f2a4c009
Create Date: 2026-12-03 11:30:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c9e1f3a5b011"
down_revision: str | None = "b8d0f2a4c009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = {
    "quits_entry_hash": """
-- The hash of a ledger entry in its chain: SHA-256 of the previous entry's hash followed by the
-- entry's fields as text (empty for a null, microseconds since the epoch for the time), so a change
-- to any field of any entry, or a missing entry, breaks the chain from there on. Each group has one
-- chain per balance slot (ledger_entries.chain_slot), so writes to different slots never wait on
-- each other for it; quits_post appends, python -m app.verify walks the chains.
CREATE OR REPLACE FUNCTION quits_entry_hash(
    p_prev bytea, p_id uuid, p_posting uuid, p_group uuid, p_user uuid, p_amount bigint, p_kind text,
    p_expense uuid, p_version integer, p_settlement uuid, p_at timestamptz
) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT sha256(p_prev || convert_to(concat_ws('|',
        p_id::text, p_posting::text, p_group::text, p_user::text, p_amount::text, p_kind,
        coalesce(p_expense::text, ''), coalesce(p_version::text, ''), coalesce(p_settlement::text, ''),
        floor(extract(epoch FROM p_at) * 1000000)::bigint::text
    ), 'UTF8'))
$$;
""",
    "quits_chain_genesis": """
-- The hash a chain starts from: its group and slot, so no chain can be passed off as another's.
CREATE OR REPLACE FUNCTION quits_chain_genesis(p_group uuid, p_slot integer) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT sha256(convert_to('quits:' || p_group::text || ':' || p_slot::text, 'UTF8')) $$;
""",
    "quits_group_chains": """
-- Trigger groups_chains: a new group gets its ledger hash chains, one per balance slot, each at its
-- genesis hash (quits_chain_genesis) with no entries yet.
CREATE OR REPLACE FUNCTION quits_group_chains() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO ledger_chains (group_id, slot, head, entries)
    SELECT NEW.id, s, quits_chain_genesis(NEW.id, s), 0 FROM generate_series(0, quits_balance_slots() - 1) s;
    RETURN NULL;
END
$$;
""",
    "quits_post": """
-- The only writer of ledger entries and balances. Inserts one balanced posting, p_entries as
-- [[user_id, amount_minor], ...] in order, appended to the hash chain of (group, p_slot), and moves
-- slot p_slot of each user's balance. The caller has already locked those balance rows
-- (quits_lock_slot or quits_lock_members), after inserting or locking the expense or settlement the
-- entries cite; the chain's head row is locked after them (every writer takes it last).
-- QUL00: a broken invariant (a bug). QUB22 (DETAIL: the limit) when the posting raises the group's
-- sum of positive nets past quits_balance_limit(): read from the committed balances, with this
-- posting's own rows locked. The exact sum adds up every member's slots; it is read only when the
-- sum of the positive parts of the group's balance rows passes the limit, since that sum bounds it
-- (max(sum of a member's slots, 0) <= sum of max(slot, 0)): while it is within the limit, no
-- posting can be refused.
CREATE OR REPLACE FUNCTION quits_post(
    p_group uuid, p_entries jsonb, p_kind text,
    p_expense_id uuid, p_expense_version integer, p_settlement_id uuid, p_slot integer
) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_posting uuid := gen_random_uuid();
    v_at timestamptz := now();
    v_users uuid[];
    v_amounts bigint[];
    v_sum bigint;
    v_distinct integer;
    v_ids uuid[] := '{}';
    v_hashes bytea[] := '{}';
    v_hash bytea;
    v_moved integer;
    v_bound numeric;
    v_positive numeric;
    v_raised numeric;
BEGIN
    SELECT array_agg((t.e->>0)::uuid ORDER BY t.n), array_agg((t.e->>1)::bigint ORDER BY t.n),
           sum((t.e->>1)::bigint), count(DISTINCT t.e->>0)
    INTO v_users, v_amounts, v_sum, v_distinct
    FROM jsonb_array_elements(p_entries) WITH ORDINALITY AS t(e, n);
    IF coalesce(v_sum, 1) <> 0 THEN
        RAISE EXCEPTION 'posting does not sum to zero: %', p_entries USING ERRCODE = 'QUL00';
    END IF;
    SELECT c.head INTO v_hash FROM ledger_chains c WHERE c.group_id = p_group AND c.slot = p_slot FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group % has no chain %', p_group, p_slot USING ERRCODE = 'QUL00';
    END IF;
    FOR i IN 1 .. cardinality(v_users) LOOP
        v_ids := v_ids || quits_uuid7();
        v_hash := quits_entry_hash(v_hash, v_ids[i], v_posting, p_group, v_users[i], v_amounts[i], p_kind,
                                   p_expense_id, p_expense_version, p_settlement_id, v_at);
        v_hashes := v_hashes || v_hash;
    END LOOP;
    INSERT INTO ledger_entries
        (id, posting_id, group_id, user_id, amount_minor, kind, expense_id, expense_version, settlement_id,
         created_at, chain_slot, chain_hash)
    SELECT t.id, v_posting, p_group, t.u, t.a, p_kind, p_expense_id, p_expense_version, p_settlement_id,
           v_at, p_slot, t.h
    FROM unnest(v_ids, v_users, v_amounts, v_hashes) WITH ORDINALITY AS t(id, u, a, h, n)
    ORDER BY t.n;
    UPDATE ledger_chains SET head = v_hash, entries = entries + cardinality(v_users)
    WHERE group_id = p_group AND slot = p_slot;
    UPDATE balances b SET net_minor = b.net_minor + d.delta
    FROM (SELECT t.u, sum(t.a) AS delta FROM unnest(v_users, v_amounts) AS t(u, a) GROUP BY t.u) d
    WHERE b.group_id = p_group AND b.user_id = d.u AND b.slot = p_slot;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    IF v_moved <> v_distinct THEN
        RAISE EXCEPTION 'posting touched a user without a balance row' USING ERRCODE = 'QUL00';
    END IF;
    SELECT sum(greatest(b.net_minor, 0)) INTO v_bound FROM balances b WHERE b.group_id = p_group;
    IF v_bound > quits_balance_limit() THEN
        SELECT sum(greatest(n.net, 0)),
               sum(greatest(n.net, 0) - greatest(n.net - coalesce(d.delta, 0), 0))
        INTO v_positive, v_raised
        FROM (SELECT b.user_id, sum(b.net_minor) AS net FROM balances b WHERE b.group_id = p_group GROUP BY b.user_id) n
        LEFT JOIN (SELECT t.u, sum(t.a) AS delta FROM unnest(v_users, v_amounts) AS t(u, a) GROUP BY t.u) d
            ON d.u = n.user_id;
        IF v_positive > quits_balance_limit() AND v_raised > 0 THEN
            RAISE EXCEPTION 'the write would take the group''s balances past the limit'
                USING ERRCODE = 'QUB22', DETAIL = quits_balance_limit()::text;
        END IF;
    END IF;
END
$$;
""",
}
NEW_SIGNATURES = {
    "quits_group_chains": "",
    "quits_chain_genesis": "uuid, integer",
    "quits_entry_hash": "bytea, uuid, uuid, uuid, uuid, bigint, text, uuid, integer, uuid, timestamptz",
}
PREVIOUS_POST = """
-- The only writer of ledger entries and balances. Inserts one balanced posting, p_entries as
-- [[user_id, amount_minor], ...] in order, and moves slot p_slot of each user's balance. The caller
-- has already locked those balance rows (quits_lock_slot or quits_lock_members), after inserting
-- or locking the expense or settlement the entries cite. QUL00: a broken invariant (a bug).
-- QUB22 (DETAIL: the limit) when the posting raises the group's sum of positive nets past
-- quits_balance_limit(): read from the committed balances, with this posting's own rows locked.
-- The exact sum adds up every member's slots; it is read only when the sum of the positive parts of
-- the group's balance rows passes the limit, since that sum bounds it (max(sum of a member's slots,
-- 0) <= sum of max(slot, 0)): while it is within the limit, no posting can be refused.
CREATE OR REPLACE FUNCTION quits_post(
    p_group uuid, p_entries jsonb, p_kind text,
    p_expense_id uuid, p_expense_version integer, p_settlement_id uuid, p_slot integer
) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_posting uuid := gen_random_uuid();
    v_users uuid[];
    v_amounts bigint[];
    v_sum bigint;
    v_distinct integer;
    v_moved integer;
    v_bound numeric;
    v_positive numeric;
    v_raised numeric;
BEGIN
    SELECT array_agg((t.e->>0)::uuid ORDER BY t.n), array_agg((t.e->>1)::bigint ORDER BY t.n),
           sum((t.e->>1)::bigint), count(DISTINCT t.e->>0)
    INTO v_users, v_amounts, v_sum, v_distinct
    FROM jsonb_array_elements(p_entries) WITH ORDINALITY AS t(e, n);
    IF coalesce(v_sum, 1) <> 0 THEN
        RAISE EXCEPTION 'posting does not sum to zero: %', p_entries USING ERRCODE = 'QUL00';
    END IF;
    INSERT INTO ledger_entries
        (id, posting_id, group_id, user_id, amount_minor, kind, expense_id, expense_version, settlement_id)
    SELECT quits_uuid7(), v_posting, p_group, t.u, t.a, p_kind, p_expense_id, p_expense_version, p_settlement_id
    FROM unnest(v_users, v_amounts) WITH ORDINALITY AS t(u, a, n)
    ORDER BY t.n;
    UPDATE balances b SET net_minor = b.net_minor + d.delta
    FROM (SELECT t.u, sum(t.a) AS delta FROM unnest(v_users, v_amounts) AS t(u, a) GROUP BY t.u) d
    WHERE b.group_id = p_group AND b.user_id = d.u AND b.slot = p_slot;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    IF v_moved <> v_distinct THEN
        RAISE EXCEPTION 'posting touched a user without a balance row' USING ERRCODE = 'QUL00';
    END IF;
    SELECT sum(greatest(b.net_minor, 0)) INTO v_bound FROM balances b WHERE b.group_id = p_group;
    IF v_bound > quits_balance_limit() THEN
        SELECT sum(greatest(n.net, 0)),
               sum(greatest(n.net, 0) - greatest(n.net - coalesce(d.delta, 0), 0))
        INTO v_positive, v_raised
        FROM (SELECT b.user_id, sum(b.net_minor) AS net FROM balances b WHERE b.group_id = p_group GROUP BY b.user_id) n
        LEFT JOIN (SELECT t.u, sum(t.a) AS delta FROM unnest(v_users, v_amounts) AS t(u, a) GROUP BY t.u) d
            ON d.u = n.user_id;
        IF v_positive > quits_balance_limit() AND v_raised > 0 THEN
            RAISE EXCEPTION 'the write would take the group''s balances past the limit'
                USING ERRCODE = 'QUB22', DETAIL = quits_balance_limit()::text;
        END IF;
    END IF;
END
$$;
"""

CHAINS = """
CREATE TABLE ledger_chains (
    group_id uuid NOT NULL,
    slot quits_balance_slot NOT NULL,
    head bytea NOT NULL,
    entries bigint NOT NULL DEFAULT 0,
    CONSTRAINT pk_ledger_chains PRIMARY KEY (group_id, slot),
    CONSTRAINT fk_ledger_chains_group_id_groups FOREIGN KEY (group_id) REFERENCES groups (id)
)
"""
EXISTING_GROUPS = """
INSERT INTO ledger_chains (group_id, slot, head, entries)
SELECT g.id, s, quits_chain_genesis(g.id, s), 0 FROM groups g CROSS JOIN generate_series(0, quits_balance_slots() - 1) s
"""
BACKFILL = """
DO $backfill$
DECLARE
    v_group uuid;
    v_hash bytea;
    v_count bigint;
    r record;
BEGIN
    FOR v_group IN SELECT DISTINCT group_id FROM ledger_entries LOOP
        v_hash := quits_chain_genesis(v_group, 0);
        v_count := 0;
        FOR r IN SELECT * FROM ledger_entries WHERE group_id = v_group ORDER BY seq LOOP
            v_hash := quits_entry_hash(v_hash, r.id, r.posting_id, r.group_id, r.user_id, r.amount_minor, r.kind,
                                       r.expense_id, r.expense_version, r.settlement_id, r.created_at);
            UPDATE ledger_entries SET chain_slot = 0, chain_hash = v_hash WHERE seq = r.seq;
            v_count := v_count + 1;
        END LOOP;
        UPDATE ledger_chains SET head = v_hash, entries = v_count WHERE group_id = v_group AND slot = 0;
    END LOOP;
END
$backfill$
"""
APP_ROLE = """
DO $grants$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'quits_app') THEN
        REVOKE ALL ON ledger_chains FROM quits_app;
        GRANT SELECT, INSERT ON ledger_chains TO quits_app;
        GRANT UPDATE (head, entries) ON ledger_chains TO quits_app;
    END IF;
END
$grants$
"""


def upgrade() -> None:
    for name in ("quits_entry_hash", "quits_chain_genesis", "quits_group_chains"):
        op.execute(FUNCTIONS[name])
    op.execute(CHAINS)
    op.execute(EXISTING_GROUPS)
    op.execute("ALTER TABLE ledger_entries ADD COLUMN chain_slot quits_balance_slot, ADD COLUMN chain_hash bytea")
    op.execute("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_immutable")
    op.execute(BACKFILL)
    op.execute("ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_immutable")
    op.execute(
        "ALTER TABLE ledger_entries ALTER COLUMN chain_slot SET NOT NULL, ALTER COLUMN chain_hash SET NOT NULL"
    )
    op.execute(
        "CREATE TRIGGER groups_chains AFTER INSERT ON groups FOR EACH ROW EXECUTE FUNCTION quits_group_chains()"
    )
    op.execute(FUNCTIONS["quits_post"])
    op.execute(APP_ROLE)


def downgrade() -> None:
    op.execute(PREVIOUS_POST)
    op.execute("DROP TRIGGER groups_chains ON groups")
    op.execute("ALTER TABLE ledger_entries DROP COLUMN chain_slot, DROP COLUMN chain_hash")
    op.execute("DROP TABLE ledger_chains")
    for name, args in NEW_SIGNATURES.items():
        op.execute(f"DROP FUNCTION {name}({args})")
