"""expenses v2: several payers, foreign currency, date, category, notes; settlement voids; history and activity

- expenses: `payers` ([[user_id, paid_minor], ...] in the group's currency; `paid_by` is the payer when
  there is one, else null), `currency` and `amount_minor` as entered with `exchange_rate` (null in the
  group's currency) and `group_amount_minor` (what the ledger posts, in `group_currency`), `date`,
  `category`, `notes`, `updated_by`. Existing rows: one payer, the group's currency, the creation date.
- settlements: `voided_at`. A settlement's reversal is a ledger entry of kind 'reversal' citing the
  settlement, so the rule over an entry's references becomes: exactly one of expense or settlement
  (an expense with its version); kind 'expense' cites an expense, kind 'settlement' a settlement. The
  rule is the function quits_entry_refs_ok, called by the CHECK constraint: PostgreSQL re-reads a
  table constraint's expression in every statement that writes the table, and the call is far
  shorter to read than the four clauses.
- expense_versions: every superseded version of an expense as the API rendered it (append-only).
- activity: who did what and when, per group (append-only), filled in by the write functions;
  existing expenses, voids, settlements and memberships are backfilled (their actor: the creator,
  marked {"backfilled": true}).

Functions: the new text of those that changed, and quits_settlement_void, quits_immutable and
quits_entry_refs_ok, frozen here (sources: app/sql); downgrade restores migration f6b8d0e2a007's.
Downgrade refuses while the data cannot be represented before this migration (several payers, a
foreign currency, a voided settlement).

Revision ID: a7c9e1f3b008
Revises: f9708ea38f85
Create Date: 2026-12-03 10:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a7c9e1f3b008"
down_revision: str | None = "f9708ea38f85"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = {
    "quits_balance_limit": """
-- The balance limit, in minor units: no write may leave a member's net, or the sum of a group's
-- positive nets, beyond it (quits_post checks it). The sum bounds every net, since nets sum to zero.
CREATE OR REPLACE FUNCTION quits_balance_limit() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 1000000000000000::bigint $$;
""",
    "quits_entry_refs_ok": """
-- The rule of ledger_entries' CHECK constraint kind_refs: an entry cites exactly one of an expense
-- (with its version) or a settlement; kind 'expense' cites an expense, kind 'settlement' a settlement.
-- A function because PostgreSQL re-reads a table CHECK constraint from its stored expression tree in
-- every statement that writes the table: the four clauses inline cost a posting about 60,000
-- instructions to read, the call a third of that (bench/README.md, "Database CPU per write").
CREATE OR REPLACE FUNCTION quits_entry_refs_ok(
    p_kind text, p_expense_id uuid, p_expense_version integer, p_settlement_id uuid
) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    RETURN (p_expense_id IS NULL) <> (p_settlement_id IS NULL)
        AND (p_expense_id IS NULL) = (p_expense_version IS NULL)
        AND (p_kind <> 'expense' OR p_expense_id IS NOT NULL)
        AND (p_kind <> 'settlement' OR p_settlement_id IS NOT NULL);
END
$$;
""",
    "quits_post": """
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
""",
    "quits_immutable": """
-- Rows of an append-only table (expense_versions, activity) are never updated or deleted: the
-- triggers <table>_immutable and <table>_no_truncate call this to refuse it.
CREATE OR REPLACE FUNCTION quits_immutable() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
""",
    "quits_expense_users": """
-- Everyone an expense row involves: every payer and every participant of its shares.
CREATE OR REPLACE FUNCTION quits_expense_users(p_expense expenses) RETURNS uuid[]
LANGUAGE sql IMMUTABLE
AS $$
    SELECT array_agg(DISTINCT u) FROM (
        SELECT (p->>0)::uuid AS u FROM jsonb_array_elements(p_expense.payers) p
        UNION ALL
        SELECT (s->>0)::uuid FROM jsonb_array_elements(p_expense.shares) s
    ) users
$$;
""",
    "quits_expense_create": """
-- Command: create an expense, in one statement (called in autocommit: one round trip, row locks held
-- only for the database's own time). p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "expense": <an expenses row, version 1>,
--    "entries": [[user_id, amount_minor], ...], "members": [[field, user_id], ...]}
-- Claims the key (a replay returns the stored response), locks one random balance slot of every
-- user, checks they are current members, inserts the expense (read from the command by the INSERT
-- itself), posts its entries and records the activity.
CREATE OR REPLACE FUNCTION quits_expense_create(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_slot integer := floor(random() * quits_balance_slots())::integer;
    v_claim record;
    v_members uuid[];
    v_locked uuid[];
    v_id uuid;
    v_created_at timestamptz;
BEGIN
    replayed := false;
    IF p_cmd ? 'claim' THEN
        v_claim := quits_claim_key(v_caller, p_cmd->'claim');
        IF NOT v_claim.claimed THEN
            replayed := true; status := v_claim.status; body := v_claim.body;
            RETURN;
        END IF;
    END IF;
    v_members := ARRAY(SELECT (m->>1)::uuid FROM jsonb_array_elements(p_cmd->'members') m);
    v_locked := quits_lock_slot(p_group, v_caller, v_members, v_slot);
    IF NOT v_members <@ v_locked THEN
        PERFORM quits_require_members(v_locked, p_cmd->'members');
    END IF;
    INSERT INTO expenses SELECT * FROM jsonb_populate_record(NULL::expenses, p_cmd->'expense') e
    WHERE e.group_id = p_group AND e.version = 1
    RETURNING id, created_at INTO v_id, v_created_at;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'a new expense must be version 1 of this group' USING ERRCODE = 'QUL00';
    END IF;
    PERFORM quits_post(p_group, p_cmd->'entries', 'expense', v_id, 1, NULL, v_slot);
    INSERT INTO activity (group_id, id, type, actor_id, created_at, expense_id)
    VALUES (p_group, quits_uuid7(), 'expense.created', v_caller, v_created_at, v_id);
END
$$;
""",
    "quits_expense_edit": """
-- Command: edit an expense. p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "expected_version": int | null,
--    "expense": <the expenses row as it will be, version = expected + 1>,
--    "previous": <the current version as the API renders it, kept in expense_versions>,
--    "entries": [[user_id, amount_minor], ...], "members": [[field, user_id], ...]}
-- Locks the expense (quits_lock_expense), then every slot of its old and new users; QUX09 when a
-- user of the current version is no longer a member. Keeps the current version in expense_versions,
-- reverses its entries, stores the new version, posts its entries and records the activity.
CREATE OR REPLACE FUNCTION quits_expense_edit(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_new expenses := jsonb_populate_record(NULL::expenses, p_cmd->'expense');
    v_old expenses;
    v_old_users uuid[];
    v_locked uuid[];
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
    v_old := quits_lock_expense(p_group, v_caller, v_new.id, (p_cmd->>'expected_version')::integer);
    IF v_new.version <> v_old.version + 1 THEN
        RAISE EXCEPTION 'an edit must make version %', v_old.version + 1 USING ERRCODE = 'QUL00';
    END IF;
    v_old_users := quits_expense_users(v_old);
    SELECT array_agg(l.user_id) INTO v_locked FROM quits_lock_members(
        p_group, v_caller, v_old_users || ARRAY(SELECT (m->>1)::uuid FROM jsonb_array_elements(p_cmd->'members') m)
    ) l;
    IF NOT v_old_users <@ coalesce(v_locked, '{}') THEN
        RAISE EXCEPTION 'the expense involves someone who is no longer a member' USING ERRCODE = 'QUX09';
    END IF;
    PERFORM quits_require_members(v_locked, p_cmd->'members');
    INSERT INTO expense_versions (group_id, expense_id, version, doc, updated_by, updated_at)
    VALUES (p_group, v_old.id, v_old.version, p_cmd->'previous', v_old.updated_by, v_old.updated_at);
    PERFORM quits_reverse_expense(p_group, v_old.id, v_old.version);
    UPDATE expenses SET
        description = v_new.description, currency = v_new.currency, amount_minor = v_new.amount_minor,
        exchange_rate = v_new.exchange_rate, group_amount_minor = v_new.group_amount_minor,
        paid_by = v_new.paid_by, payers = v_new.payers, split_type = v_new.split_type, shares = v_new.shares,
        date = v_new.date, category = v_new.category, notes = v_new.notes, version = v_new.version,
        updated_by = v_new.updated_by, updated_at = v_new.updated_at
    WHERE id = v_old.id;
    PERFORM quits_post(p_group, p_cmd->'entries', 'expense', v_new.id, v_new.version, NULL, 0);
    INSERT INTO activity (group_id, id, type, actor_id, created_at, expense_id)
    VALUES (p_group, quits_uuid7(), 'expense.updated', v_caller, v_new.updated_at, v_new.id);
END
$$;
""",
    "quits_expense_void": """
-- Command: void an expense. p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "expense_id": uuid, "expected_version": int | null,
--    "voided_at": timestamptz}
-- Locks the expense (quits_lock_expense: QUX10 when it is already voided), then every slot of its
-- users (QUX09 when one is no longer a member), posts the reversal of its entries, sets voided_at
-- and records the activity.
CREATE OR REPLACE FUNCTION quits_expense_void(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_voided_at timestamptz := (p_cmd->>'voided_at')::timestamptz;
    v_old expenses;
    v_old_users uuid[];
    v_locked uuid[];
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
    v_old := quits_lock_expense(
        p_group, v_caller, (p_cmd->>'expense_id')::uuid, (p_cmd->>'expected_version')::integer
    );
    v_old_users := quits_expense_users(v_old);
    SELECT array_agg(l.user_id) INTO v_locked FROM quits_lock_members(p_group, v_caller, v_old_users) l;
    IF NOT v_old_users <@ coalesce(v_locked, '{}') THEN
        RAISE EXCEPTION 'the expense involves someone who is no longer a member' USING ERRCODE = 'QUX09';
    END IF;
    PERFORM quits_reverse_expense(p_group, v_old.id, v_old.version);
    -- updated_by and updated_at stay those of the version: the activity says who voided it, and when.
    UPDATE expenses SET voided_at = v_voided_at WHERE id = v_old.id;
    INSERT INTO activity (group_id, id, type, actor_id, created_at, expense_id)
    VALUES (p_group, quits_uuid7(), 'expense.voided', v_caller, v_voided_at, v_old.id);
END
$$;
""",
    "quits_settlement_create": """
-- Command: record a settlement, in one statement. p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "settlement": <a settlements row>}
-- Locks every slot of both users, checks they are current members and that the amount is at most
-- min(-net(from), net(to)) under those locks (QUS22, DETAIL the limit), inserts and posts.
CREATE OR REPLACE FUNCTION quits_settlement_create(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_s settlements := jsonb_populate_record(NULL::settlements, p_cmd->'settlement');
    v_claim record;
    v_from bigint;
    v_to bigint;
    v_limit bigint;
BEGIN
    replayed := false;
    IF p_cmd ? 'claim' THEN
        v_claim := quits_claim_key(v_caller, p_cmd->'claim');
        IF NOT v_claim.claimed THEN
            replayed := true; status := v_claim.status; body := v_claim.body;
            RETURN;
        END IF;
    END IF;
    IF v_s.group_id IS DISTINCT FROM p_group THEN
        RAISE EXCEPTION 'the settlement is not in this group' USING ERRCODE = 'QUL00';
    END IF;
    SELECT max(l.net_minor) FILTER (WHERE l.user_id = v_s.from_user_id),
           max(l.net_minor) FILTER (WHERE l.user_id = v_s.to_user_id)
    INTO v_from, v_to
    FROM quits_lock_members(p_group, v_caller, ARRAY[v_s.from_user_id, v_s.to_user_id]) l;
    IF v_from IS NULL THEN
        RAISE EXCEPTION 'from_user_id is not a current member of the group'
            USING ERRCODE = 'QUM22', DETAIL = 'from_user_id:' || v_s.from_user_id;
    END IF;
    IF v_to IS NULL THEN
        RAISE EXCEPTION 'to_user_id is not a current member of the group'
            USING ERRCODE = 'QUM22', DETAIL = 'to_user_id:' || v_s.to_user_id;
    END IF;
    v_limit := least(-v_from, v_to);
    IF v_s.amount_minor > v_limit THEN
        RAISE EXCEPTION 'settlement exceeds balance' USING ERRCODE = 'QUS22', DETAIL = greatest(v_limit, 0)::text;
    END IF;
    INSERT INTO settlements SELECT (v_s).*;
    PERFORM quits_post(
        p_group, jsonb_build_array(jsonb_build_array(v_s.from_user_id, v_s.amount_minor),
                                   jsonb_build_array(v_s.to_user_id, -v_s.amount_minor)),
        'settlement', NULL, NULL, v_s.id, 0
    );
    INSERT INTO activity (group_id, id, type, actor_id, created_at, settlement_id)
    VALUES (p_group, quits_uuid7(), 'settlement.created', v_caller, v_s.created_at, v_s.id);
END
$$;
""",
    "quits_settlement_void": """
-- Command: void a settlement. p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "settlement_id": uuid, "voided_at": timestamptz}
-- QUG04 unless the caller is a member; locks the settlement (QUS04: none in the group; QUS10:
-- already voided), then every slot of both parties (QUS09 when one is no longer a member), posts
-- the exact negation of its entries (kind 'reversal'; not limited by balances), sets voided_at and
-- records the activity.
CREATE OR REPLACE FUNCTION quits_settlement_void(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_voided_at timestamptz := (p_cmd->>'voided_at')::timestamptz;
    v_s settlements;
    v_locked integer;
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
    PERFORM 1 FROM memberships m WHERE m.group_id = p_group AND m.user_id = v_caller;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group not found' USING ERRCODE = 'QUG04';
    END IF;
    SELECT * INTO v_s FROM settlements s WHERE s.id = (p_cmd->>'settlement_id')::uuid AND s.group_id = p_group
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'settlement not found' USING ERRCODE = 'QUS04';
    END IF;
    IF v_s.voided_at IS NOT NULL THEN
        RAISE EXCEPTION 'the settlement is voided' USING ERRCODE = 'QUS10';
    END IF;
    SELECT count(*) INTO v_locked
    FROM quits_lock_members(p_group, v_caller, ARRAY[v_s.from_user_id, v_s.to_user_id]) l;
    IF v_locked <> 2 THEN
        RAISE EXCEPTION 'the settlement involves someone who is no longer a member' USING ERRCODE = 'QUS09';
    END IF;
    PERFORM quits_post(
        p_group, jsonb_build_array(jsonb_build_array(v_s.from_user_id, -v_s.amount_minor),
                                   jsonb_build_array(v_s.to_user_id, v_s.amount_minor)),
        'reversal', NULL, NULL, v_s.id, 0
    );
    UPDATE settlements SET voided_at = v_voided_at WHERE id = v_s.id;
    INSERT INTO activity (group_id, id, type, actor_id, created_at, settlement_id)
    VALUES (p_group, quits_uuid7(), 'settlement.voided', v_caller, v_voided_at, v_s.id);
END
$$;
""",
    "quits_member_remove": """
-- Command: remove a member whose net is zero. p_cmd: {"caller": uuid, "user_id": uuid}.
-- Locks every slot of the member (as every other writer, in slot order); QUM04 when they are not
-- a member, QUM09 when their net is not zero; deletes the membership (its slots go by cascade).
CREATE OR REPLACE FUNCTION quits_member_remove(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_user uuid := (p_cmd->>'user_id')::uuid;
    v_net bigint;
BEGIN
    replayed := false;
    SELECT l.net_minor INTO v_net FROM quits_lock_members(p_group, (p_cmd->>'caller')::uuid, ARRAY[v_user]) l;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member not found' USING ERRCODE = 'QUM04';
    END IF;
    IF v_net <> 0 THEN
        RAISE EXCEPTION 'a member whose net balance is not zero cannot be removed' USING ERRCODE = 'QUM09';
    END IF;
    DELETE FROM memberships m WHERE m.group_id = p_group AND m.user_id = v_user;
    INSERT INTO activity (group_id, id, type, actor_id, user_id)
    VALUES (p_group, quits_uuid7(), 'member.removed', (p_cmd->>'caller')::uuid, v_user);
END
$$;
""",
}
NEW_SIGNATURES = {
    "quits_immutable": "",
    "quits_settlement_void": "uuid, jsonb",
    "quits_balance_limit": "",
    "quits_entry_refs_ok": "text, uuid, integer, uuid",
}

PREVIOUS = {
    "quits_post": """
-- The only writer of ledger entries and balances. Inserts one balanced posting, p_entries as
-- [[user_id, amount_minor], ...] in order, and moves slot p_slot of each user's balance. The caller
-- has already locked those balance rows (quits_lock_slot or quits_lock_members), after inserting
-- or locking the expense or settlement the entries cite. QUL00: a broken invariant (a bug).
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
    v_moved integer;
BEGIN
    SELECT array_agg((t.e->>0)::uuid ORDER BY t.n), array_agg((t.e->>1)::bigint ORDER BY t.n)
    INTO v_users, v_amounts
    FROM jsonb_array_elements(p_entries) WITH ORDINALITY AS t(e, n);
    IF (SELECT coalesce(sum(a), 1) FROM unnest(v_amounts) a) <> 0 THEN
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
    IF v_moved <> (SELECT count(DISTINCT u) FROM unnest(v_users) u) THEN
        RAISE EXCEPTION 'posting touched a user without a balance row' USING ERRCODE = 'QUL00';
    END IF;
END
$$;
""",
    "quits_expense_users": """
-- Everyone an expense row involves: its payer and every participant of its shares.
CREATE OR REPLACE FUNCTION quits_expense_users(p_expense expenses) RETURNS uuid[]
LANGUAGE sql IMMUTABLE
AS $$
    SELECT array_agg(DISTINCT u) FROM (
        SELECT p_expense.paid_by AS u
        UNION ALL
        SELECT (s->>0)::uuid FROM jsonb_array_elements(p_expense.shares) s
    ) users
$$;
""",
    "quits_expense_create": """
-- Command: create an expense, in one statement (called in autocommit: one round trip, row locks held
-- only for the database's own time). p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "expense": <an expenses row, version 1>,
--    "entries": [[user_id, amount_minor], ...], "members": [[field, user_id], ...]}
-- Claims the key (a replay returns the stored response), locks one random balance slot of every
-- user, checks they are current members, inserts the expense and posts its entries.
CREATE OR REPLACE FUNCTION quits_expense_create(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_expense expenses := jsonb_populate_record(NULL::expenses, p_cmd->'expense');
    v_slot integer := floor(random() * quits_balance_slots())::integer;
    v_claim record;
    v_members uuid[];
    v_locked uuid[];
BEGIN
    replayed := false;
    IF p_cmd ? 'claim' THEN
        v_claim := quits_claim_key(v_caller, p_cmd->'claim');
        IF NOT v_claim.claimed THEN
            replayed := true; status := v_claim.status; body := v_claim.body;
            RETURN;
        END IF;
    END IF;
    IF v_expense.group_id IS DISTINCT FROM p_group OR v_expense.version <> 1 THEN
        RAISE EXCEPTION 'a new expense must be version 1 of this group' USING ERRCODE = 'QUL00';
    END IF;
    v_members := ARRAY(SELECT (m->>1)::uuid FROM jsonb_array_elements(p_cmd->'members') m);
    v_locked := quits_lock_slot(p_group, v_caller, v_members, v_slot);
    IF NOT v_members <@ v_locked THEN
        PERFORM quits_require_members(v_locked, p_cmd->'members');
    END IF;
    INSERT INTO expenses SELECT (v_expense).*;
    PERFORM quits_post(p_group, p_cmd->'entries', 'expense', v_expense.id, 1, NULL, v_slot);
END
$$;
""",
    "quits_expense_edit": """
-- Command: edit an expense. p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "expected_version": int | null,
--    "expense": <the expenses row as it will be, version = expected + 1>,
--    "entries": [[user_id, amount_minor], ...], "members": [[field, user_id], ...]}
-- Locks the expense (quits_lock_expense), then every slot of its old and new users; QUX09 when a
-- user of the current version is no longer a member. Reverses the current version's entries,
-- stores the new version and posts its entries.
CREATE OR REPLACE FUNCTION quits_expense_edit(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_new expenses := jsonb_populate_record(NULL::expenses, p_cmd->'expense');
    v_old expenses;
    v_old_users uuid[];
    v_locked uuid[];
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
    v_old := quits_lock_expense(p_group, v_caller, v_new.id, (p_cmd->>'expected_version')::integer);
    IF v_new.version <> v_old.version + 1 THEN
        RAISE EXCEPTION 'an edit must make version %', v_old.version + 1 USING ERRCODE = 'QUL00';
    END IF;
    v_old_users := quits_expense_users(v_old);
    SELECT array_agg(l.user_id) INTO v_locked FROM quits_lock_members(
        p_group, v_caller, v_old_users || ARRAY(SELECT (m->>1)::uuid FROM jsonb_array_elements(p_cmd->'members') m)
    ) l;
    IF NOT v_old_users <@ coalesce(v_locked, '{}') THEN
        RAISE EXCEPTION 'the expense involves someone who is no longer a member' USING ERRCODE = 'QUX09';
    END IF;
    PERFORM quits_require_members(v_locked, p_cmd->'members');
    PERFORM quits_reverse_expense(p_group, v_old.id, v_old.version);
    UPDATE expenses SET
        description = v_new.description, amount_minor = v_new.amount_minor, paid_by = v_new.paid_by,
        split_type = v_new.split_type, shares = v_new.shares, version = v_new.version,
        updated_at = v_new.updated_at
    WHERE id = v_old.id;
    PERFORM quits_post(p_group, p_cmd->'entries', 'expense', v_new.id, v_new.version, NULL, 0);
END
$$;
""",
    "quits_expense_void": """
-- Command: void an expense. p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "expense_id": uuid, "expected_version": int | null,
--    "voided_at": timestamptz}
-- Locks the expense (quits_lock_expense: QUX10 when it is already voided), then every slot of its
-- users (QUX09 when one is no longer a member), posts the reversal of its entries, sets voided_at.
CREATE OR REPLACE FUNCTION quits_expense_void(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_voided_at timestamptz := (p_cmd->>'voided_at')::timestamptz;
    v_old expenses;
    v_old_users uuid[];
    v_locked uuid[];
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
    v_old := quits_lock_expense(
        p_group, v_caller, (p_cmd->>'expense_id')::uuid, (p_cmd->>'expected_version')::integer
    );
    v_old_users := quits_expense_users(v_old);
    SELECT array_agg(l.user_id) INTO v_locked FROM quits_lock_members(p_group, v_caller, v_old_users) l;
    IF NOT v_old_users <@ coalesce(v_locked, '{}') THEN
        RAISE EXCEPTION 'the expense involves someone who is no longer a member' USING ERRCODE = 'QUX09';
    END IF;
    PERFORM quits_reverse_expense(p_group, v_old.id, v_old.version);
    UPDATE expenses SET voided_at = v_voided_at, updated_at = v_voided_at WHERE id = v_old.id;
END
$$;
""",
    "quits_settlement_create": """
-- Command: record a settlement, in one statement. p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "settlement": <a settlements row>}
-- Locks every slot of both users, checks they are current members and that the amount is at most
-- min(-net(from), net(to)) under those locks (QUS22, DETAIL the limit), inserts and posts.
CREATE OR REPLACE FUNCTION quits_settlement_create(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_s settlements := jsonb_populate_record(NULL::settlements, p_cmd->'settlement');
    v_claim record;
    v_from bigint;
    v_to bigint;
    v_limit bigint;
BEGIN
    replayed := false;
    IF p_cmd ? 'claim' THEN
        v_claim := quits_claim_key(v_caller, p_cmd->'claim');
        IF NOT v_claim.claimed THEN
            replayed := true; status := v_claim.status; body := v_claim.body;
            RETURN;
        END IF;
    END IF;
    IF v_s.group_id IS DISTINCT FROM p_group THEN
        RAISE EXCEPTION 'the settlement is not in this group' USING ERRCODE = 'QUL00';
    END IF;
    SELECT max(l.net_minor) FILTER (WHERE l.user_id = v_s.from_user_id),
           max(l.net_minor) FILTER (WHERE l.user_id = v_s.to_user_id)
    INTO v_from, v_to
    FROM quits_lock_members(p_group, v_caller, ARRAY[v_s.from_user_id, v_s.to_user_id]) l;
    IF v_from IS NULL THEN
        RAISE EXCEPTION 'from_user_id is not a current member of the group'
            USING ERRCODE = 'QUM22', DETAIL = 'from_user_id:' || v_s.from_user_id;
    END IF;
    IF v_to IS NULL THEN
        RAISE EXCEPTION 'to_user_id is not a current member of the group'
            USING ERRCODE = 'QUM22', DETAIL = 'to_user_id:' || v_s.to_user_id;
    END IF;
    v_limit := least(-v_from, v_to);
    IF v_s.amount_minor > v_limit THEN
        RAISE EXCEPTION 'settlement exceeds balance' USING ERRCODE = 'QUS22', DETAIL = greatest(v_limit, 0)::text;
    END IF;
    INSERT INTO settlements SELECT (v_s).*;
    PERFORM quits_post(
        p_group, jsonb_build_array(jsonb_build_array(v_s.from_user_id, v_s.amount_minor),
                                   jsonb_build_array(v_s.to_user_id, -v_s.amount_minor)),
        'settlement', NULL, NULL, v_s.id, 0
    );
END
$$;
""",
    "quits_member_remove": """
-- Command: remove a member whose net is zero. p_cmd: {"caller": uuid, "user_id": uuid}.
-- Locks every slot of the member (as every other writer, in slot order); QUM04 when they are not
-- a member, QUM09 when their net is not zero; deletes the membership (its slots go by cascade).
CREATE OR REPLACE FUNCTION quits_member_remove(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_user uuid := (p_cmd->>'user_id')::uuid;
    v_net bigint;
BEGIN
    replayed := false;
    SELECT l.net_minor INTO v_net FROM quits_lock_members(p_group, (p_cmd->>'caller')::uuid, ARRAY[v_user]) l;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member not found' USING ERRCODE = 'QUM04';
    END IF;
    IF v_net <> 0 THEN
        RAISE EXCEPTION 'a member whose net balance is not zero cannot be removed' USING ERRCODE = 'QUM09';
    END IF;
    DELETE FROM memberships m WHERE m.group_id = p_group AND m.user_id = v_user;
END
$$;
""",
}

EXPENSE_COLUMNS = """
ALTER TABLE expenses
    ADD COLUMN group_currency varchar(3), ADD COLUMN exchange_rate varchar(21),
    ADD COLUMN group_amount_minor quits_amount_minor, ADD COLUMN payers jsonb, ADD COLUMN date date,
    ADD COLUMN category varchar(50), ADD COLUMN notes varchar(2000), ADD COLUMN updated_by uuid,
    ALTER COLUMN paid_by DROP NOT NULL
"""
EXPENSE_BACKFILL = """
UPDATE expenses SET group_currency = currency, group_amount_minor = amount_minor,
    payers = jsonb_build_array(jsonb_build_array(paid_by, amount_minor)),
    date = (created_at AT TIME ZONE 'UTC')::date, updated_by = created_by
"""
EXPENSE_REQUIRED = """
ALTER TABLE expenses ALTER COLUMN group_currency SET NOT NULL, ALTER COLUMN group_amount_minor SET NOT NULL,
    ALTER COLUMN payers SET NOT NULL, ALTER COLUMN date SET NOT NULL, ALTER COLUMN updated_by SET NOT NULL
"""
# The rule itself is quits_entry_refs_ok (see its source for why it is a function): an entry cites
# exactly one of an expense (with its version) or a settlement; kind 'expense' cites an expense, kind
# 'settlement' a settlement.
KIND_REFS = "quits_entry_refs_ok(kind, expense_id, expense_version, settlement_id)"
PREVIOUS_KIND_REFS = (
    "(kind = 'settlement') = (settlement_id IS NOT NULL)"
    " AND (kind <> 'settlement') = (expense_id IS NOT NULL AND expense_version IS NOT NULL)"
)
VERSIONS = """
CREATE TABLE expense_versions (
    group_id uuid NOT NULL,
    expense_id uuid NOT NULL,
    version quits_version NOT NULL,
    doc jsonb NOT NULL,
    updated_by uuid NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT pk_expense_versions PRIMARY KEY (group_id, expense_id, version)
)
"""
ACTIVITY = """
CREATE TABLE activity (
    group_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    id uuid NOT NULL,
    type varchar(32) NOT NULL,
    actor_id uuid NOT NULL,
    expense_id uuid,
    settlement_id uuid,
    user_id uuid,
    detail jsonb,
    CONSTRAINT pk_activity PRIMARY KEY (group_id, created_at, id)
)
"""
BACKFILLED = "jsonb_build_object('backfilled', true)"
ACTIVITY_BACKFILL = [
    "INSERT INTO activity (group_id, created_at, id, type, actor_id, user_id, detail)"
    f" SELECT group_id, joined_at, gen_random_uuid(), 'member.added', user_id, user_id, {BACKFILLED} FROM memberships",
    "INSERT INTO activity (group_id, created_at, id, type, actor_id, expense_id, detail)"
    f" SELECT group_id, created_at, gen_random_uuid(), 'expense.created', created_by, id, {BACKFILLED} FROM expenses",
    "INSERT INTO activity (group_id, created_at, id, type, actor_id, expense_id, detail)"
    f" SELECT group_id, voided_at, gen_random_uuid(), 'expense.voided', created_by, id, {BACKFILLED} FROM expenses"
    " WHERE voided_at IS NOT NULL",
    "INSERT INTO activity (group_id, created_at, id, type, actor_id, settlement_id, detail)"
    f" SELECT group_id, created_at, gen_random_uuid(), 'settlement.created', created_by, id, {BACKFILLED}"
    " FROM settlements",
]
APPEND_ONLY = ("expense_versions", "activity")

# The service's role (migration f9708ea38f85), when there is one: it may now void settlements, and it
# may only read and append to the two append-only tables (default privileges gave it more).
# Only voided_at of a settlement: its amount and parties stay out of reach.
APP_ROLE_GRANTS = """
DO $grants$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'quits_app') THEN
        GRANT UPDATE (voided_at) ON settlements TO quits_app;
        REVOKE UPDATE, DELETE, TRUNCATE ON expense_versions, activity FROM quits_app;
        GRANT SELECT, INSERT ON expense_versions, activity TO quits_app;
    END IF;
END
$grants$
"""
APP_ROLE_REVOKES = """
DO $grants$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'quits_app') THEN
        REVOKE UPDATE (voided_at) ON settlements FROM quits_app;
    END IF;
END
$grants$
"""


def _append_only(table: str) -> None:
    op.execute(
        f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table}"
        " FOR EACH ROW EXECUTE FUNCTION quits_immutable()"
    )
    op.execute(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}"
        " FOR EACH STATEMENT EXECUTE FUNCTION quits_immutable()"
    )


def upgrade() -> None:
    op.execute(EXPENSE_COLUMNS)
    op.execute(EXPENSE_BACKFILL)
    op.execute(EXPENSE_REQUIRED)
    op.execute("ALTER TABLE settlements ADD COLUMN voided_at timestamptz")
    for sql in FUNCTIONS.values():  # before the rule that calls quits_entry_refs_ok
        op.execute(sql)
    # The initial migration's name carries the naming convention twice; the new rule gets the plain name.
    op.execute("ALTER TABLE ledger_entries DROP CONSTRAINT ck_ledger_entries_ck_ledger_entries_kind_refs")
    op.execute(f"ALTER TABLE ledger_entries ADD CONSTRAINT ck_ledger_entries_kind_refs CHECK ({KIND_REFS})")
    op.execute(VERSIONS)
    op.execute(ACTIVITY)
    for sql in ACTIVITY_BACKFILL:
        op.execute(sql)
    for table in APPEND_ONLY:
        _append_only(table)
    op.execute(APP_ROLE_GRANTS)


REFUSE_DOWNGRADE = """
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM expenses WHERE jsonb_array_length(payers) <> 1 OR currency <> group_currency)
       OR EXISTS (SELECT 1 FROM settlements WHERE voided_at IS NOT NULL) THEN
        RAISE EXCEPTION 'cannot downgrade: expenses with several payers or a foreign currency, or voided'
            ' settlements, exist (the schema before a7c9e1f3b008 cannot hold them)';
    END IF;
END $$
"""


def downgrade() -> None:
    op.execute(REFUSE_DOWNGRADE)
    op.execute(APP_ROLE_REVOKES)
    for table in APPEND_ONLY:
        op.execute(f"DROP TABLE {table}")
    op.execute("ALTER TABLE ledger_entries DROP CONSTRAINT ck_ledger_entries_kind_refs")
    op.execute(
        "ALTER TABLE ledger_entries ADD CONSTRAINT ck_ledger_entries_ck_ledger_entries_kind_refs"
        f" CHECK ({PREVIOUS_KIND_REFS})"
    )
    for name, args in NEW_SIGNATURES.items():  # after the rule that called quits_entry_refs_ok
        op.execute(f"DROP FUNCTION {name}({args})")
    for sql in PREVIOUS.values():
        op.execute(sql)
    op.execute("ALTER TABLE settlements DROP COLUMN voided_at")
    op.execute(
        "ALTER TABLE expenses DROP COLUMN group_currency, DROP COLUMN exchange_rate, DROP COLUMN group_amount_minor,"
        " DROP COLUMN payers, DROP COLUMN date, DROP COLUMN category, DROP COLUMN notes, DROP COLUMN updated_by,"
        " ALTER COLUMN paid_by SET NOT NULL"
    )
