"""import: quits_post_import sorts an import's ledger entries once (was seven times)

quits_post_import (migration c9e1f3a5d010) gathered an import's entries into seven arrays with an
array_agg(... ORDER BY at, record, phase, n) each, so PostgreSQL sorted every entry seven times (about
5 x 10^5 entries for 10^5 imported rows: 3.9 s of a 22 s statement on the benchmark's machine). It now
reads them in that order once (FOR ... IN <the same query> ORDER BY ...) and hashes each into the
chain as it comes; the entries, their order, ids, hashes and every check are as before.

Sources: app/sql/quits_post_import.sql; the text below is this migration's frozen copy, and PREVIOUS
is c9e1f3a5d010's (which downgrade restores).

Revision ID: e2b4d6f8a013
Revises: d1a3c5e7f012
Create Date: 2026-12-03 19:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "e2b4d6f8a013"
down_revision: str | None = "d1a3c5e7f012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = {
    "quits_post_import": """
-- The bulk writer of ledger entries and balances, for a group made by an import (quits_group_import):
-- posts, set-based, every expense and settlement the group holds, as their own writes would have
-- posted them, in one statement. The group must have no ledger entries yet. Per expense: +paid to
-- each payer and -owed to each participant with a non-zero part (kind 'expense', citing the expense
-- and its version; one posting), then, when it is voided, the exact negation (kind 'reversal', its own
-- posting); per settlement: +amount to from_user_id, -amount to to_user_id (kind 'settlement'), and
-- its negation when voided. Entries are inserted in time order (created_at, or voided_at for a
-- reversal), appended in that order to the hash chain of (group, slot 0), whose head row is locked
-- after the balance rows, as quits_post takes them. Slot 0 of each user's balance moves by the
-- user's sum. Checked as quits_post checks one
-- posting, and more (QUL00 unless said otherwise): each record's parts add up to its total, in the
-- group's currency; every posting sums to zero; every user posted to is a member with balance rows;
-- the group's sum of positive nets is at most quits_balance_limit() (QUB22, DETAIL: the limit); and
-- at the end every balance equals the sum of its ledger entries. Returns the number of entries.
CREATE OR REPLACE FUNCTION quits_post_import(p_group uuid) RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_currency text;
    v_entries bigint;
    v_users integer;
    v_moved integer;
    v_positive numeric;
    v_at timestamptz := now();
    v_hash bytea;
    v_entry record;
    v_id uuid;
    v_ids uuid[] := '{}';
    v_postings uuid[] := '{}';
    v_users_of uuid[] := '{}';
    v_amounts bigint[] := '{}';
    v_kinds text[] := '{}';
    v_expense_ids uuid[] := '{}';
    v_versions integer[] := '{}';
    v_settlement_ids uuid[] := '{}';
    v_hashes bytea[] := '{}';
BEGIN
    SELECT g.currency INTO v_currency FROM groups g WHERE g.id = p_group;
    PERFORM 1 FROM balances b WHERE b.group_id = p_group ORDER BY b.user_id, b.slot FOR UPDATE;
    IF EXISTS (SELECT 1 FROM ledger_entries l WHERE l.group_id = p_group) THEN
        RAISE EXCEPTION 'group % already has ledger entries', p_group USING ERRCODE = 'QUL00';
    END IF;
    SELECT c.head INTO v_hash FROM ledger_chains c WHERE c.group_id = p_group AND c.slot = 0 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group % has no chain 0', p_group USING ERRCODE = 'QUL00';
    END IF;
    IF EXISTS (
        SELECT 1 FROM expenses e
        WHERE e.group_id = p_group AND (
            e.group_currency <> v_currency
            OR (SELECT coalesce(sum((p->>1)::bigint), -1) FROM jsonb_array_elements(e.payers) p) <> e.group_amount_minor
            OR (SELECT coalesce(sum((s->>1)::bigint), -1) FROM jsonb_array_elements(e.shares) s) <> e.group_amount_minor
            OR EXISTS (SELECT 1 FROM jsonb_array_elements(e.payers) p WHERE (p->>1)::bigint < 0)
            OR EXISTS (SELECT 1 FROM jsonb_array_elements(e.shares) s WHERE (s->>1)::bigint < 0))
    ) OR EXISTS (SELECT 1 FROM settlements s WHERE s.group_id = p_group AND s.currency <> v_currency) THEN
        RAISE EXCEPTION 'an imported record''s parts do not add up to its total in %', v_currency
            USING ERRCODE = 'QUL00';
    END IF;
    FOR v_entry IN
        WITH records AS MATERIALIZED (
            SELECT e.id, e.version, e.created_at, e.voided_at, e.payers, e.shares,
                   gen_random_uuid() AS posting, gen_random_uuid() AS reversal
            FROM expenses e WHERE e.group_id = p_group
        ), settled AS MATERIALIZED (
            SELECT s.*, gen_random_uuid() AS posting, gen_random_uuid() AS reversal
            FROM settlements s WHERE s.group_id = p_group
        ), entries AS (
            SELECT v.at, r.id AS record, v.phase, x.n, v.posting, x.u, v.sign * x.a AS a, v.kind, r.id AS expense_id,
                   r.version AS expense_version, NULL::uuid AS settlement_id
            FROM records r
            CROSS JOIN LATERAL (
                SELECT p.n, (p.e->>0)::uuid, (p.e->>1)::bigint FROM jsonb_array_elements(r.payers) WITH ORDINALITY p(e, n)
                UNION ALL
                SELECT 1000 + s.n, (s.e->>0)::uuid, -(s.e->>1)::bigint
                FROM jsonb_array_elements(r.shares) WITH ORDINALITY s(e, n) WHERE (s.e->>1)::bigint <> 0
            ) x(n, u, a)
            CROSS JOIN LATERAL (VALUES (0, r.created_at, r.posting, 1, 'expense'),
                                       (1, r.voided_at, r.reversal, -1, 'reversal')) v(phase, at, posting, sign, kind)
            WHERE v.phase = 0 OR r.voided_at IS NOT NULL
            UNION ALL
            SELECT v.at, s.id, v.phase, x.n, v.posting, x.u, v.sign * x.a, v.kind, NULL, NULL, s.id
            FROM settled s
            CROSS JOIN LATERAL (VALUES (1, s.from_user_id, s.amount_minor), (2, s.to_user_id, -s.amount_minor)) x(n, u, a)
            CROSS JOIN LATERAL (VALUES (0, s.created_at, s.posting, 1, 'settlement'),
                                       (1, s.voided_at, s.reversal, -1, 'reversal')) v(phase, at, posting, sign, kind)
            WHERE v.phase = 0 OR s.voided_at IS NOT NULL
        )
        SELECT t.posting, t.u, t.a, t.kind, t.expense_id, t.expense_version, t.settlement_id
        FROM entries t ORDER BY t.at, t.record, t.phase, t.n
    LOOP
        v_id := quits_uuid7();
        v_hash := quits_entry_hash(v_hash, v_id, v_entry.posting, p_group, v_entry.u, v_entry.a, v_entry.kind,
                                   v_entry.expense_id, v_entry.expense_version, v_entry.settlement_id, v_at);
        v_ids := array_append(v_ids, v_id);
        v_postings := array_append(v_postings, v_entry.posting);
        v_users_of := array_append(v_users_of, v_entry.u);
        v_amounts := array_append(v_amounts, v_entry.a);
        v_kinds := array_append(v_kinds, v_entry.kind);
        v_expense_ids := array_append(v_expense_ids, v_entry.expense_id);
        v_versions := array_append(v_versions, v_entry.expense_version);
        v_settlement_ids := array_append(v_settlement_ids, v_entry.settlement_id);
        v_hashes := array_append(v_hashes, v_hash);
    END LOOP;
    v_entries := cardinality(v_ids);
    INSERT INTO ledger_entries
        (id, posting_id, group_id, user_id, amount_minor, kind, expense_id, expense_version, settlement_id,
         created_at, chain_slot, chain_hash)
    SELECT t.id, t.posting, p_group, t.u, t.a, t.kind, t.expense_id, t.expense_version, t.settlement_id,
           v_at, 0, t.h
    FROM unnest(v_ids, v_postings, v_users_of, v_amounts, v_kinds, v_expense_ids, v_versions, v_settlement_ids,
                v_hashes) WITH ORDINALITY AS t(id, posting, u, a, kind, expense_id, expense_version, settlement_id, h, n)
    ORDER BY t.n;
    UPDATE ledger_chains SET head = v_hash, entries = entries + v_entries WHERE group_id = p_group AND slot = 0;
    IF EXISTS (
        SELECT 1 FROM ledger_entries l WHERE l.group_id = p_group GROUP BY l.posting_id HAVING sum(l.amount_minor) <> 0
    ) THEN
        RAISE EXCEPTION 'an imported posting does not sum to zero' USING ERRCODE = 'QUL00';
    END IF;
    UPDATE balances b SET net_minor = b.net_minor + d.delta
    FROM (SELECT l.user_id, sum(l.amount_minor) AS delta FROM ledger_entries l WHERE l.group_id = p_group
          GROUP BY l.user_id) d
    WHERE b.group_id = p_group AND b.user_id = d.user_id AND b.slot = 0;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    SELECT count(DISTINCT l.user_id) INTO v_users FROM ledger_entries l WHERE l.group_id = p_group;
    IF v_moved <> v_users THEN
        RAISE EXCEPTION 'an imported posting touched a user without a balance row' USING ERRCODE = 'QUL00';
    END IF;
    SELECT sum(greatest(n.net, 0)) INTO v_positive
    FROM (SELECT sum(b.net_minor) AS net FROM balances b WHERE b.group_id = p_group GROUP BY b.user_id) n;
    IF v_positive > quits_balance_limit() THEN
        RAISE EXCEPTION 'the import would take the group''s balances past the limit'
            USING ERRCODE = 'QUB22', DETAIL = quits_balance_limit()::text;
    END IF;
    IF EXISTS (
        SELECT 1 FROM member_balances m
        LEFT JOIN (SELECT l.user_id, sum(l.amount_minor) AS total FROM ledger_entries l WHERE l.group_id = p_group
                   GROUP BY l.user_id) t ON t.user_id = m.user_id
        WHERE m.group_id = p_group AND m.net_minor <> coalesce(t.total, 0)
    ) THEN
        RAISE EXCEPTION 'an imported group''s balances differ from its ledger' USING ERRCODE = 'QUL00';
    END IF;
    RETURN v_entries;
END
$$;
""",
}
PREVIOUS = {
    "quits_post_import": """
-- The bulk writer of ledger entries and balances, for a group made by an import (quits_group_import):
-- posts, set-based, every expense and settlement the group holds, as their own writes would have
-- posted them, in one statement. The group must have no ledger entries yet. Per expense: +paid to
-- each payer and -owed to each participant with a non-zero part (kind 'expense', citing the expense
-- and its version; one posting), then, when it is voided, the exact negation (kind 'reversal', its own
-- posting); per settlement: +amount to from_user_id, -amount to to_user_id (kind 'settlement'), and
-- its negation when voided. Entries are inserted in time order (created_at, or voided_at for a
-- reversal), appended in that order to the hash chain of (group, slot 0), whose head row is locked
-- after the balance rows, as quits_post takes them. Slot 0 of each user's balance moves by the
-- user's sum. Checked as quits_post checks one
-- posting, and more (QUL00 unless said otherwise): each record's parts add up to its total, in the
-- group's currency; every posting sums to zero; every user posted to is a member with balance rows;
-- the group's sum of positive nets is at most quits_balance_limit() (QUB22, DETAIL: the limit); and
-- at the end every balance equals the sum of its ledger entries. Returns the number of entries.
CREATE OR REPLACE FUNCTION quits_post_import(p_group uuid) RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_currency text;
    v_entries bigint;
    v_users integer;
    v_moved integer;
    v_positive numeric;
    v_at timestamptz := now();
    v_hash bytea;
    v_postings uuid[];
    v_users_of uuid[];
    v_amounts bigint[];
    v_kinds text[];
    v_expense_ids uuid[];
    v_versions integer[];
    v_settlement_ids uuid[];
    v_ids uuid[] := '{}';
    v_hashes bytea[] := '{}';
BEGIN
    SELECT g.currency INTO v_currency FROM groups g WHERE g.id = p_group;
    PERFORM 1 FROM balances b WHERE b.group_id = p_group ORDER BY b.user_id, b.slot FOR UPDATE;
    IF EXISTS (SELECT 1 FROM ledger_entries l WHERE l.group_id = p_group) THEN
        RAISE EXCEPTION 'group % already has ledger entries', p_group USING ERRCODE = 'QUL00';
    END IF;
    SELECT c.head INTO v_hash FROM ledger_chains c WHERE c.group_id = p_group AND c.slot = 0 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group % has no chain 0', p_group USING ERRCODE = 'QUL00';
    END IF;
    IF EXISTS (
        SELECT 1 FROM expenses e
        WHERE e.group_id = p_group AND (
            e.group_currency <> v_currency
            OR (SELECT coalesce(sum((p->>1)::bigint), -1) FROM jsonb_array_elements(e.payers) p) <> e.group_amount_minor
            OR (SELECT coalesce(sum((s->>1)::bigint), -1) FROM jsonb_array_elements(e.shares) s) <> e.group_amount_minor
            OR EXISTS (SELECT 1 FROM jsonb_array_elements(e.payers) p WHERE (p->>1)::bigint < 0)
            OR EXISTS (SELECT 1 FROM jsonb_array_elements(e.shares) s WHERE (s->>1)::bigint < 0))
    ) OR EXISTS (SELECT 1 FROM settlements s WHERE s.group_id = p_group AND s.currency <> v_currency) THEN
        RAISE EXCEPTION 'an imported record''s parts do not add up to its total in %', v_currency
            USING ERRCODE = 'QUL00';
    END IF;
    WITH records AS MATERIALIZED (
        SELECT e.id, e.version, e.created_at, e.voided_at, e.payers, e.shares,
               gen_random_uuid() AS posting, gen_random_uuid() AS reversal
        FROM expenses e WHERE e.group_id = p_group
    ), settled AS MATERIALIZED (
        SELECT s.*, gen_random_uuid() AS posting, gen_random_uuid() AS reversal
        FROM settlements s WHERE s.group_id = p_group
    ), entries AS (
        SELECT v.at, r.id AS record, v.phase, x.n, v.posting, x.u, v.sign * x.a AS a, v.kind, r.id AS expense_id,
               r.version AS expense_version, NULL::uuid AS settlement_id
        FROM records r
        CROSS JOIN LATERAL (
            SELECT p.n, (p.e->>0)::uuid, (p.e->>1)::bigint FROM jsonb_array_elements(r.payers) WITH ORDINALITY p(e, n)
            UNION ALL
            SELECT 1000 + s.n, (s.e->>0)::uuid, -(s.e->>1)::bigint
            FROM jsonb_array_elements(r.shares) WITH ORDINALITY s(e, n) WHERE (s.e->>1)::bigint <> 0
        ) x(n, u, a)
        CROSS JOIN LATERAL (VALUES (0, r.created_at, r.posting, 1, 'expense'),
                                   (1, r.voided_at, r.reversal, -1, 'reversal')) v(phase, at, posting, sign, kind)
        WHERE v.phase = 0 OR r.voided_at IS NOT NULL
        UNION ALL
        SELECT v.at, s.id, v.phase, x.n, v.posting, x.u, v.sign * x.a, v.kind, NULL, NULL, s.id
        FROM settled s
        CROSS JOIN LATERAL (VALUES (1, s.from_user_id, s.amount_minor), (2, s.to_user_id, -s.amount_minor)) x(n, u, a)
        CROSS JOIN LATERAL (VALUES (0, s.created_at, s.posting, 1, 'settlement'),
                                   (1, s.voided_at, s.reversal, -1, 'reversal')) v(phase, at, posting, sign, kind)
        WHERE v.phase = 0 OR s.voided_at IS NOT NULL
    )
    SELECT array_agg(t.posting ORDER BY t.at, t.record, t.phase, t.n),
           array_agg(t.u ORDER BY t.at, t.record, t.phase, t.n),
           array_agg(t.a ORDER BY t.at, t.record, t.phase, t.n),
           array_agg(t.kind ORDER BY t.at, t.record, t.phase, t.n),
           array_agg(t.expense_id ORDER BY t.at, t.record, t.phase, t.n),
           array_agg(t.expense_version ORDER BY t.at, t.record, t.phase, t.n),
           array_agg(t.settlement_id ORDER BY t.at, t.record, t.phase, t.n)
    INTO v_postings, v_users_of, v_amounts, v_kinds, v_expense_ids, v_versions, v_settlement_ids
    FROM entries t;
    v_entries := coalesce(cardinality(v_postings), 0);
    FOR i IN 1 .. v_entries LOOP
        v_ids := array_append(v_ids, quits_uuid7());
        v_hash := quits_entry_hash(v_hash, v_ids[i], v_postings[i], p_group, v_users_of[i], v_amounts[i], v_kinds[i],
                                   v_expense_ids[i], v_versions[i], v_settlement_ids[i], v_at);
        v_hashes := array_append(v_hashes, v_hash);
    END LOOP;
    INSERT INTO ledger_entries
        (id, posting_id, group_id, user_id, amount_minor, kind, expense_id, expense_version, settlement_id,
         created_at, chain_slot, chain_hash)
    SELECT t.id, t.posting, p_group, t.u, t.a, t.kind, t.expense_id, t.expense_version, t.settlement_id,
           v_at, 0, t.h
    FROM unnest(v_ids, v_postings, v_users_of, v_amounts, v_kinds, v_expense_ids, v_versions, v_settlement_ids,
                v_hashes) WITH ORDINALITY AS t(id, posting, u, a, kind, expense_id, expense_version, settlement_id, h, n)
    ORDER BY t.n;
    UPDATE ledger_chains SET head = v_hash, entries = entries + v_entries WHERE group_id = p_group AND slot = 0;
    IF EXISTS (
        SELECT 1 FROM ledger_entries l WHERE l.group_id = p_group GROUP BY l.posting_id HAVING sum(l.amount_minor) <> 0
    ) THEN
        RAISE EXCEPTION 'an imported posting does not sum to zero' USING ERRCODE = 'QUL00';
    END IF;
    UPDATE balances b SET net_minor = b.net_minor + d.delta
    FROM (SELECT l.user_id, sum(l.amount_minor) AS delta FROM ledger_entries l WHERE l.group_id = p_group
          GROUP BY l.user_id) d
    WHERE b.group_id = p_group AND b.user_id = d.user_id AND b.slot = 0;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    SELECT count(DISTINCT l.user_id) INTO v_users FROM ledger_entries l WHERE l.group_id = p_group;
    IF v_moved <> v_users THEN
        RAISE EXCEPTION 'an imported posting touched a user without a balance row' USING ERRCODE = 'QUL00';
    END IF;
    SELECT sum(greatest(n.net, 0)) INTO v_positive
    FROM (SELECT sum(b.net_minor) AS net FROM balances b WHERE b.group_id = p_group GROUP BY b.user_id) n;
    IF v_positive > quits_balance_limit() THEN
        RAISE EXCEPTION 'the import would take the group''s balances past the limit'
            USING ERRCODE = 'QUB22', DETAIL = quits_balance_limit()::text;
    END IF;
    IF EXISTS (
        SELECT 1 FROM member_balances m
        LEFT JOIN (SELECT l.user_id, sum(l.amount_minor) AS total FROM ledger_entries l WHERE l.group_id = p_group
                   GROUP BY l.user_id) t ON t.user_id = m.user_id
        WHERE m.group_id = p_group AND m.net_minor <> coalesce(t.total, 0)
    ) THEN
        RAISE EXCEPTION 'an imported group''s balances differ from its ledger' USING ERRCODE = 'QUL00';
    END IF;
    RETURN v_entries;
END
$$;
""",
}


def upgrade() -> None:
    for sql in FUNCTIONS.values():
        op.execute(sql)


def downgrade() -> None:
    for sql in PREVIOUS.values():
        op.execute(sql)
