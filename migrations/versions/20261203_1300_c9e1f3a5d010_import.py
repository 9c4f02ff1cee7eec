"""import: a whole group in one statement, through a bulk writer of the ledger with quits_post's checks

- quits_post_import(group): the second writer of ledger entries and balances, for a group an import has
  just made and filled: it posts every expense and settlement the group holds, set-based, as their own
  writes would have (expense, then reversal when voided; settlement, then reversal when voided), moves
  slot 0 of each balance, and checks what quits_post checks for one posting (every posting sums to
  zero, every user is a member, the balance limit) plus that each record's parts add up to its total
  and that every balance equals its ledger sum at the end. It refuses a group that already has entries.
  Its entries join the group's hash chain 0 (migration c9e1f3a5b011) in the order it inserts them, and
  the chain's head and length move with them, so `python -m app.verify` walks an imported group's chain
  as it walks any other.
- quits_group_import(group, cmd): the import command (app.ledger.commands): claims the Idempotency-Key,
  creates the group, its guests and memberships, stores the records, calls quits_post_import, removes
  the former members (zero nets only) and records the activity, all or nothing.

No table changes: the service role already has what these functions do (INSERT on every table they
write, DELETE on memberships). Sources: app/sql; the text below is this migration's frozen copy.

Revision ID: c9e1f3a5d010
Revises: 4fdff58b4738
Create Date: 2026-12-03 13:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c9e1f3a5d010"
down_revision: str | None = "4fdff58b4738"
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
    "quits_group_import": """
-- Command: import a group, in one statement (called in one transaction, with the import's own
-- statement_timeout). p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "source": "quits" | "ihatemoney" | "splitwise",
--    "group": <a groups row, created_by the caller>, "guests": [<a users row: id, name, created_at>, ...],
--    "members": [user_id, ...] (the caller first, then every guest), "former": [user_id, ...] (guests who
--    left the source group: their nets must come out zero), "expenses": [<an expenses row>, ...],
--    "versions": [<an expense_versions row>, ...], "settlements": [<a settlements row>, ...],
--    "expense_defaults": <an expenses row>, "settlement_defaults": <a settlements row>}
-- (each expense and settlement row is read over its defaults: the columns a row leaves out are theirs)
-- Claims the key (a replay returns the stored response), creates the group, the guests (no email,
-- token or password: only guests can be made here) and the memberships, stores every record as
-- given (each must belong to the new group), opens its ledger through quits_post_import, removes the
-- former members and records the activity: member.added for each person; expense.created,
-- expense.updated (each later version), expense.voided, settlement.created and settlement.voided at
-- the record's own time; member.removed for the former members; actor: the caller; detail:
-- {"imported": source}. Nothing is written unless all of it is (QUL00 for a broken invariant).
CREATE OR REPLACE FUNCTION quits_group_import(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_group groups := jsonb_populate_record(NULL::groups, p_cmd->'group');
    v_detail jsonb := jsonb_build_object('imported', p_cmd->>'source');
    v_members uuid[] := ARRAY(SELECT (m #>> '{}')::uuid FROM jsonb_array_elements(p_cmd->'members') m);
    v_former uuid[] := ARRAY(SELECT (m #>> '{}')::uuid FROM jsonb_array_elements(p_cmd->'former') m);
    v_guests uuid[];
    v_count bigint;
    v_claim record;
BEGIN
    replayed := false;
    IF p_cmd ? 'claim' THEN
        v_claim := quits_claim_key(v_caller, p_cmd->'claim');
        IF NOT v_claim.claimed THEN
            replayed := true; status := v_claim.status; body := v_claim.body;
            RETURN;
        END IF;
    END IF;
    IF v_group.id IS DISTINCT FROM p_group OR v_group.created_by IS DISTINCT FROM v_caller
       OR v_members[1] IS DISTINCT FROM v_caller OR NOT v_former <@ v_members OR v_caller = ANY(v_former) THEN
        RAISE EXCEPTION 'an import must create its own group, with the caller as its first member'
            USING ERRCODE = 'QUL00';
    END IF;
    INSERT INTO groups SELECT (v_group).*;
    WITH made AS (
        INSERT INTO users (id, name, email, password_hash, guest, created_at)
        SELECT u.id, u.name, NULL, NULL, true, v_group.created_at
        FROM jsonb_populate_recordset(NULL::users, p_cmd->'guests') u
        RETURNING id
    )
    SELECT coalesce(array_agg(id), '{}') INTO v_guests FROM made;
    IF cardinality(v_members) <> 1 + cardinality(v_guests) OR NOT v_members[2:] <@ v_guests THEN
        RAISE EXCEPTION 'an import''s members are the caller and the guests it creates' USING ERRCODE = 'QUL00';
    END IF;
    INSERT INTO memberships (group_id, user_id, joined_at)
    SELECT p_group, m.u, v_group.created_at FROM unnest(v_members) m(u);
    INSERT INTO expenses SELECT * FROM jsonb_populate_recordset(
        jsonb_populate_record(NULL::expenses, p_cmd->'expense_defaults'), p_cmd->'expenses');
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count <> (SELECT count(*) FROM expenses e WHERE e.group_id = p_group) THEN
        RAISE EXCEPTION 'an imported expense belongs to another group' USING ERRCODE = 'QUL00';
    END IF;
    INSERT INTO expense_versions SELECT * FROM jsonb_populate_recordset(NULL::expense_versions, p_cmd->'versions');
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count <> (SELECT count(*) FROM expense_versions v
                   JOIN expenses e ON e.id = v.expense_id AND e.group_id = p_group AND v.version < e.version
                   WHERE v.group_id = p_group) THEN
        RAISE EXCEPTION 'an imported expense version cites no earlier version of an expense of the group'
            USING ERRCODE = 'QUL00';
    END IF;
    INSERT INTO settlements SELECT * FROM jsonb_populate_recordset(
        jsonb_populate_record(NULL::settlements, p_cmd->'settlement_defaults'), p_cmd->'settlements');
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count <> (SELECT count(*) FROM settlements s WHERE s.group_id = p_group) THEN
        RAISE EXCEPTION 'an imported settlement belongs to another group' USING ERRCODE = 'QUL00';
    END IF;
    PERFORM quits_post_import(p_group);
    IF EXISTS (SELECT 1 FROM member_balances m WHERE m.group_id = p_group AND m.user_id = ANY(v_former)
               AND m.net_minor <> 0) THEN
        RAISE EXCEPTION 'a former member''s imported net is not zero' USING ERRCODE = 'QUL00';
    END IF;
    INSERT INTO activity (group_id, id, type, actor_id, created_at, expense_id, settlement_id, user_id, detail)
    SELECT p_group, quits_uuid7(), a.type, v_caller, a.at, a.expense_id, a.settlement_id, a.user_id, v_detail
    FROM (
        SELECT 'member.added', v_group.created_at, NULL::uuid, NULL::uuid, m.u FROM unnest(v_members) m(u)
        UNION ALL
        SELECT 'expense.created', e.created_at, e.id, NULL, NULL FROM expenses e WHERE e.group_id = p_group
        UNION ALL
        SELECT 'expense.updated', v.updated_at, v.expense_id, NULL, NULL
        FROM expense_versions v WHERE v.group_id = p_group AND v.version > 1
        UNION ALL
        SELECT 'expense.updated', e.updated_at, e.id, NULL, NULL FROM expenses e
        WHERE e.group_id = p_group AND e.version > 1
        UNION ALL
        SELECT 'expense.voided', e.voided_at, e.id, NULL, NULL FROM expenses e
        WHERE e.group_id = p_group AND e.voided_at IS NOT NULL
        UNION ALL
        SELECT 'settlement.created', s.created_at, NULL, s.id, NULL FROM settlements s WHERE s.group_id = p_group
        UNION ALL
        SELECT 'settlement.voided', s.voided_at, NULL, s.id, NULL FROM settlements s
        WHERE s.group_id = p_group AND s.voided_at IS NOT NULL
        UNION ALL
        SELECT 'member.removed', v_group.created_at, NULL, NULL, f.u FROM unnest(v_former) f(u)
    ) a(type, at, expense_id, settlement_id, user_id)
    ORDER BY a.at;
    DELETE FROM memberships m WHERE m.group_id = p_group AND m.user_id = ANY(v_former);
END
$$;
""",
}
SIGNATURES = {"quits_post_import": "(uuid)", "quits_group_import": "(uuid, jsonb)"}


def upgrade() -> None:
    for sql in FUNCTIONS.values():
        op.execute(sql)


def downgrade() -> None:
    for name in reversed(list(FUNCTIONS)):
        op.execute(f"DROP FUNCTION {name}{SIGNATURES[name]}")
