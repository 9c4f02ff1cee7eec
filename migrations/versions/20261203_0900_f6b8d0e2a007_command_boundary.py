"""one command boundary for every balance-changing write; database functions with one readable source

Every write that moves balances is one call of one SQL function taking the group id and one jsonb
command: quits_expense_create, quits_expense_edit, quits_expense_void, quits_settlement_create and
quits_member_remove. Membership, versions, over-settlement and the ledger's own invariants are
checked there, under the locks, and only there; errors are domain SQLSTATEs of class QU that the app
maps (app.ledger.commands). Rows arrive as whole jsonb records (jsonb_populate_record), so a new
column of an expense or a settlement needs no change to the create functions.

The current text of every function is in app/sql/<name>.sql; what follows is this migration's frozen
copy (a test compares the database at head with app/sql). Downgrade restores the functions of
migrations b2d4f6a8c002, c3e5a7b9d003 and e5a7c9d1f006, also as frozen copies.

Revision ID: f6b8d0e2a007
Revises: e5a7c9d1f006
Create Date: 2026-12-03 09:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f6b8d0e2a007"
down_revision: str | None = "e5a7c9d1f006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# In creation order (a LANGUAGE sql function is checked against what exists when it is created).
FUNCTIONS = {
    "quits_balance_slots": """
-- How many balance rows (slots) each member's net is split over. An expense locks and moves one
-- randomly chosen slot per user; whatever must see a whole net locks every slot (see quits_post).
CREATE OR REPLACE FUNCTION quits_balance_slots() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 8 $$;
""",
    "ledger_entries_refuse_change": """
-- Ledger entries are immutable: the triggers ledger_entries_immutable (UPDATE, DELETE) and
-- ledger_entries_no_truncate (TRUNCATE) call this to refuse any change.
CREATE OR REPLACE FUNCTION ledger_entries_refuse_change() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are immutable: % refused', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
""",
    "quits_membership_slots": """
-- Trigger memberships_slots: a new membership gets its zero balance slots (removed with it by cascade).
CREATE OR REPLACE FUNCTION quits_membership_slots() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO balances (group_id, user_id, slot)
    SELECT NEW.group_id, NEW.user_id, s FROM generate_series(0, quits_balance_slots() - 1) s;
    RETURN NULL;
END
$$;
""",
    "quits_claim_key": """
-- Claim an Idempotency-Key for p_caller, storing the response the app rendered for this request.
-- p_claim: {"key", "fingerprint" (hex), "status", "response", "ttl_hours"}.
-- claimed: this request is the first (or the key had expired): go on and write.
-- Otherwise the stored status and body are returned for a replay; another request under the key
-- raises QUK22; a claim still held by an uncommitted request past lock_timeout raises QUK09.
-- The claim is part of the caller's statement: if the write fails, the key stays unused.
CREATE OR REPLACE FUNCTION quits_claim_key(
    p_caller uuid, p_claim jsonb, OUT claimed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_fingerprint bytea := decode(p_claim->>'fingerprint', 'hex');
    v_stored bytea;
BEGIN
    BEGIN
        INSERT INTO idempotency_keys AS k (user_id, key, fingerprint, status_code, response_body)
        VALUES (p_caller, p_claim->>'key', v_fingerprint, (p_claim->>'status')::smallint, p_claim->>'response')
        ON CONFLICT (user_id, key) DO UPDATE
            SET fingerprint = EXCLUDED.fingerprint, status_code = EXCLUDED.status_code,
                response_body = EXCLUDED.response_body, created_at = now()
            WHERE k.created_at < now() - make_interval(hours => (p_claim->>'ttl_hours')::int)
        RETURNING true INTO claimed;
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION 'a request with this Idempotency-Key is in progress' USING ERRCODE = 'QUK09';
    END;
    IF claimed THEN
        RETURN;
    END IF;
    claimed := false;
    SELECT k.fingerprint, k.status_code, k.response_body INTO v_stored, status, body
    FROM idempotency_keys k WHERE k.user_id = p_caller AND k.key = p_claim->>'key';
    IF v_stored IS DISTINCT FROM v_fingerprint THEN
        RAISE EXCEPTION 'this Idempotency-Key was used with a different request' USING ERRCODE = 'QUK22';
    END IF;
END
$$;
""",
    "quits_lock_members": """
-- Lock every balance slot of p_users in ascending (user_id, slot) order and return the nets of those
-- who are current members (a user missing from the result is not a member). QUG04 unless p_caller
-- is a member: a group the caller is not in does not exist for them.
CREATE OR REPLACE FUNCTION quits_lock_members(p_group uuid, p_caller uuid, p_users uuid[])
RETURNS TABLE (user_id uuid, net_minor bigint)
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM 1 FROM memberships m WHERE m.group_id = p_group AND m.user_id = p_caller;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group not found' USING ERRCODE = 'QUG04';
    END IF;
    RETURN QUERY
        SELECT l.user_id, sum(l.net_minor)::bigint FROM (
            SELECT b.user_id, b.net_minor FROM balances b
            WHERE b.group_id = p_group AND b.user_id = ANY(p_users)
            ORDER BY b.user_id, b.slot
            FOR UPDATE
        ) l
        GROUP BY l.user_id ORDER BY l.user_id;
END
$$;
""",
    "quits_lock_slot": """
-- Lock slot p_slot of each of p_users in ascending user_id order; return the users locked (those who
-- are current members). QUG04 unless p_caller is a member. Used by expenses, which need no whole net.
CREATE OR REPLACE FUNCTION quits_lock_slot(p_group uuid, p_caller uuid, p_users uuid[], p_slot integer)
RETURNS uuid[]
LANGUAGE plpgsql
AS $$
DECLARE
    v_locked uuid[];
BEGIN
    PERFORM 1 FROM memberships m WHERE m.group_id = p_group AND m.user_id = p_caller;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group not found' USING ERRCODE = 'QUG04';
    END IF;
    SELECT array_agg(l.user_id) INTO v_locked FROM (
        SELECT b.user_id FROM balances b
        WHERE b.group_id = p_group AND b.slot = p_slot AND b.user_id = ANY(p_users)
        ORDER BY b.user_id
        FOR UPDATE
    ) l;
    RETURN coalesce(v_locked, '{}');
END
$$;
""",
    "quits_require_members": """
-- QUM22 for the first of p_members ([[field, user_id], ...], in order) that is not in p_locked (the
-- users whose balance rows the caller locked, i.e. the current members); DETAIL is field:user_id.
CREATE OR REPLACE FUNCTION quits_require_members(p_locked uuid[], p_members jsonb) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_field text;
    v_user uuid;
BEGIN
    SELECT t.m->>0, (t.m->>1)::uuid INTO v_field, v_user
    FROM jsonb_array_elements(p_members) WITH ORDINALITY AS t(m, n)
    WHERE NOT ((t.m->>1)::uuid = ANY(p_locked))
    ORDER BY t.n LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% % is not a current member of the group', v_field, v_user
            USING ERRCODE = 'QUM22', DETAIL = v_field || ':' || v_user;
    END IF;
END
$$;
""",
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
    "quits_reverse_expense": """
-- Post the exact negation of an expense version's entries (kind 'reversal'), to slot 0. The caller
-- holds the expense row and every slot of its users locked. QUL00 if the version posted nothing.
CREATE OR REPLACE FUNCTION quits_reverse_expense(p_group uuid, p_expense_id uuid, p_version integer)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_entries jsonb;
BEGIN
    SELECT jsonb_agg(jsonb_build_array(l.user_id, -l.amount_minor) ORDER BY l.seq) INTO v_entries
    FROM ledger_entries l
    WHERE l.expense_id = p_expense_id AND l.expense_version = p_version AND l.kind = 'expense';
    IF v_entries IS NULL THEN
        RAISE EXCEPTION 'expense % version % has no entries', p_expense_id, p_version USING ERRCODE = 'QUL00';
    END IF;
    PERFORM quits_post(p_group, v_entries, 'reversal', p_expense_id, p_version, NULL, 0);
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
    "quits_lock_expense": """
-- Lock an expense of the group for an edit or a void, after checking the caller is a member (QUG04).
-- QUX04: no such expense in the group. QUX10: already voided. QUX12: its version is not
-- p_expected_version (DETAIL: the current version); a null p_expected_version accepts any.
CREATE OR REPLACE FUNCTION quits_lock_expense(
    p_group uuid, p_caller uuid, p_expense_id uuid, p_expected_version integer
) RETURNS expenses
LANGUAGE plpgsql
AS $$
DECLARE
    v_expense expenses;
BEGIN
    PERFORM 1 FROM memberships m WHERE m.group_id = p_group AND m.user_id = p_caller;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group not found' USING ERRCODE = 'QUG04';
    END IF;
    SELECT * INTO v_expense FROM expenses e WHERE e.id = p_expense_id AND e.group_id = p_group FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'expense not found' USING ERRCODE = 'QUX04';
    END IF;
    IF v_expense.voided_at IS NOT NULL THEN
        RAISE EXCEPTION 'the expense is voided' USING ERRCODE = 'QUX10';
    END IF;
    IF v_expense.version <> coalesce(p_expected_version, v_expense.version) THEN
        RAISE EXCEPTION 'the expense has changed' USING ERRCODE = 'QUX12', DETAIL = v_expense.version::text;
    END IF;
    RETURN v_expense;
END
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
    "quits_key_only": """
-- Command: a request that changes nothing (an edit equal to the current version, a second void)
-- still claims its Idempotency-Key, so that a retry replays it and another request under the key is
-- refused. p_cmd: {"caller": uuid, "claim"?: {see quits_claim_key}}. Writes nothing else.
CREATE OR REPLACE FUNCTION quits_key_only(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_claim record;
BEGIN
    replayed := false;
    IF p_cmd ? 'claim' THEN
        v_claim := quits_claim_key((p_cmd->>'caller')::uuid, p_cmd->'claim');
        IF NOT v_claim.claimed THEN
            replayed := true; status := v_claim.status; body := v_claim.body;
        END IF;
    END IF;
END
$$;
""",
}
SIGNATURES = {
    "quits_balance_slots": "",
    "quits_claim_key": "uuid, jsonb",
    "quits_lock_members": "uuid, uuid, uuid[]",
    "quits_lock_slot": "uuid, uuid, uuid[], integer",
    "quits_require_members": "uuid[], jsonb",
    "quits_post": "uuid, jsonb, text, uuid, integer, uuid, integer",
    "quits_reverse_expense": "uuid, uuid, integer",
    "quits_expense_users": "expenses",
    "quits_lock_expense": "uuid, uuid, uuid, integer",
    "quits_expense_create": "uuid, jsonb",
    "quits_expense_edit": "uuid, jsonb",
    "quits_expense_void": "uuid, jsonb",
    "quits_settlement_create": "uuid, jsonb",
    "quits_member_remove": "uuid, jsonb",
    "quits_key_only": "uuid, jsonb",
}

# What the previous migrations left (restored on downgrade), and the signatures it had.
PREVIOUS = {
    "ledger_entries_refuse_change": """CREATE OR REPLACE FUNCTION ledger_entries_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are immutable: % refused', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
""",
    "quits_membership_slots": """
CREATE OR REPLACE FUNCTION quits_membership_slots() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO balances (group_id, user_id, slot)
    SELECT NEW.group_id, NEW.user_id, s FROM generate_series(0, 7) s;
    RETURN NULL;
END $$
""",
    "quits_claim_key": """
CREATE FUNCTION quits_claim_key(
    p_user uuid, p_key text, p_fingerprint bytea, p_status smallint, p_body text, p_ttl_hours int,
    OUT claimed boolean, OUT status smallint, OUT body text
) LANGUAGE plpgsql AS $$
DECLARE
    v_fingerprint bytea;
BEGIN
    BEGIN
        INSERT INTO idempotency_keys AS k (user_id, key, fingerprint, status_code, response_body)
        VALUES (p_user, p_key, p_fingerprint, p_status, p_body)
        ON CONFLICT (user_id, key) DO UPDATE
            SET fingerprint = EXCLUDED.fingerprint, status_code = EXCLUDED.status_code,
                response_body = EXCLUDED.response_body, created_at = now()
            WHERE k.created_at < now() - make_interval(hours => p_ttl_hours)
        RETURNING true INTO claimed;
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION 'a request with this Idempotency-Key is in progress' USING ERRCODE = 'QU409';
    END;
    IF claimed THEN
        RETURN;
    END IF;
    claimed := false;
    SELECT k.fingerprint, k.status_code, k.response_body INTO v_fingerprint, status, body
    FROM idempotency_keys k WHERE k.user_id = p_user AND k.key = p_key;
    IF v_fingerprint IS DISTINCT FROM p_fingerprint THEN
        RAISE EXCEPTION 'this Idempotency-Key was used with a different request' USING ERRCODE = 'QU421';
    END IF;
END $$
""",
    "quits_lock_members": """
CREATE FUNCTION quits_lock_members(p_group uuid, p_caller uuid, p_users uuid[])
RETURNS TABLE (user_id uuid, net_minor bigint) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM memberships m WHERE m.group_id = p_group AND m.user_id = p_caller;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group not found' USING ERRCODE = 'QU404';
    END IF;
    RETURN QUERY
        SELECT l.user_id, sum(l.net_minor)::bigint FROM (
            SELECT b.user_id, b.net_minor FROM balances b
            WHERE b.group_id = p_group AND b.user_id = ANY(p_users)
            ORDER BY b.user_id, b.slot
            FOR UPDATE
        ) l
        GROUP BY l.user_id ORDER BY l.user_id;
END $$
""",
    "quits_lock_slot": """
CREATE FUNCTION quits_lock_slot(p_group uuid, p_caller uuid, p_users uuid[], p_slot int)
RETURNS uuid[] LANGUAGE plpgsql AS $$
DECLARE
    v_locked uuid[];
BEGIN
    PERFORM 1 FROM memberships m WHERE m.group_id = p_group AND m.user_id = p_caller;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group not found' USING ERRCODE = 'QU404';
    END IF;
    SELECT array_agg(l.user_id) INTO v_locked FROM (
        SELECT b.user_id FROM balances b
        WHERE b.group_id = p_group AND b.slot = p_slot AND b.user_id = ANY(p_users)
        ORDER BY b.user_id
        FOR UPDATE
    ) l;
    RETURN coalesce(v_locked, '{}');
END $$
""",
    "quits_post": """
CREATE FUNCTION quits_post(
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
""",
    "quits_create_expense": """
CREATE FUNCTION quits_create_expense(
    p_caller uuid, p_key text, p_fingerprint bytea, p_ttl_hours int, p_response text,
    p_id uuid, p_group uuid, p_description text, p_amount bigint, p_currency text, p_paid_by uuid,
    p_split_type text, p_shares jsonb, p_created_at timestamptz,
    p_entry_users uuid[], p_entry_amounts bigint[], p_participants uuid[],
    OUT status smallint, OUT body text, OUT replayed boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_claim record;
    v_slot int := floor(random() * 8)::int;
    v_locked uuid[];
    v_missing uuid;
BEGIN
    IF p_key IS NOT NULL THEN
        v_claim := quits_claim_key(p_caller, p_key, p_fingerprint, 201::smallint, p_response, p_ttl_hours);
        IF NOT v_claim.claimed THEN
            status := v_claim.status; body := v_claim.body; replayed := true;
            RETURN;
        END IF;
    END IF;
    v_locked := quits_lock_slot(p_group, p_caller, array_append(p_participants, p_paid_by), v_slot);
    IF NOT (p_paid_by = ANY(v_locked)) THEN
        RAISE EXCEPTION 'paid_by must be a current member of the group' USING ERRCODE = 'QU422', DETAIL = 'paid_by';
    END IF;
    SELECT p INTO v_missing FROM unnest(p_participants) p WHERE NOT (p = ANY(v_locked)) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'participant % is not a current member', v_missing
            USING ERRCODE = 'QU422', DETAIL = 'participants:' || v_missing;
    END IF;
    INSERT INTO expenses (id, group_id, description, amount_minor, currency, paid_by, split_type, shares,
                          version, created_by, created_at, updated_at)
    VALUES (p_id, p_group, p_description, p_amount, p_currency, p_paid_by, p_split_type, p_shares,
            1, p_caller, p_created_at, p_created_at);
    PERFORM quits_post(p_group, p_entry_users, p_entry_amounts, 'expense', p_id, 1, NULL, v_slot);
    status := 201; body := p_response; replayed := false;
END $$
""",
    "quits_create_settlement": """
CREATE FUNCTION quits_create_settlement(
    p_caller uuid, p_key text, p_fingerprint bytea, p_ttl_hours int, p_response text,
    p_id uuid, p_group uuid, p_from uuid, p_to uuid, p_amount bigint, p_currency text, p_note text,
    p_created_at timestamptz,
    OUT status smallint, OUT body text, OUT replayed boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_claim record;
    v_from bigint;
    v_to bigint;
    v_limit bigint;
BEGIN
    IF p_key IS NOT NULL THEN
        v_claim := quits_claim_key(p_caller, p_key, p_fingerprint, 201::smallint, p_response, p_ttl_hours);
        IF NOT v_claim.claimed THEN
            status := v_claim.status; body := v_claim.body; replayed := true;
            RETURN;
        END IF;
    END IF;
    SELECT max(l.net_minor) FILTER (WHERE l.user_id = p_from), max(l.net_minor) FILTER (WHERE l.user_id = p_to)
    INTO v_from, v_to
    FROM quits_lock_members(p_group, p_caller, ARRAY[p_from, p_to]) l;
    IF v_from IS NULL THEN
        RAISE EXCEPTION 'from_user_id must be a current member of the group'
            USING ERRCODE = 'QU422', DETAIL = 'from_user_id';
    END IF;
    IF v_to IS NULL THEN
        RAISE EXCEPTION 'to_user_id must be a current member of the group'
            USING ERRCODE = 'QU422', DETAIL = 'to_user_id';
    END IF;
    -- Checked under the locks: neither net can move until this statement commits.
    v_limit := least(-v_from, v_to);
    IF p_amount > v_limit THEN
        RAISE EXCEPTION 'settlement exceeds balance' USING ERRCODE = 'QU423', DETAIL = greatest(v_limit, 0)::text;
    END IF;
    INSERT INTO settlements (id, group_id, from_user_id, to_user_id, amount_minor, currency, note,
                             created_by, created_at)
    VALUES (p_id, p_group, p_from, p_to, p_amount, p_currency, p_note, p_caller, p_created_at);
    PERFORM quits_post(p_group, ARRAY[p_from, p_to], ARRAY[p_amount, -p_amount], 'settlement', NULL, NULL, p_id, 0);
    status := 201; body := p_response; replayed := false;
END $$
""",
}
PREVIOUS_SIGNATURES = {
    "quits_create_settlement": "uuid, text, bytea, int, text, uuid, uuid, uuid, uuid, bigint, text, text, timestamptz",
    "quits_create_expense": "uuid, text, bytea, int, text, uuid, uuid, text, bigint, text, uuid, text, jsonb,"
    " timestamptz, uuid[], bigint[], uuid[]",
    "quits_post": "uuid, uuid[], bigint[], text, uuid, int, uuid, int",
    "quits_lock_slot": "uuid, uuid, uuid[], int",
    "quits_lock_members": "uuid, uuid, uuid[]",
    "quits_claim_key": "uuid, text, bytea, smallint, text, int",
}


# The slot count has one definition, quits_balance_slots(); the slot domain's rule uses it too.
SLOT_RULE = "VALUE >= 0 AND VALUE < quits_balance_slots()"
PREVIOUS_SLOT_RULE = "VALUE >= 0 AND VALUE < 8"


def _slot_rule(rule: str) -> None:
    op.execute("ALTER DOMAIN quits_balance_slot DROP CONSTRAINT quits_balance_slot_check")
    op.execute(f"ALTER DOMAIN quits_balance_slot ADD CONSTRAINT quits_balance_slot_check CHECK ({rule})")


def upgrade() -> None:
    for name, args in PREVIOUS_SIGNATURES.items():
        op.execute(f"DROP FUNCTION {name}({args})")
    for sql in FUNCTIONS.values():
        op.execute(sql)
    _slot_rule(SLOT_RULE)


def downgrade() -> None:
    _slot_rule(PREVIOUS_SLOT_RULE)
    for name, args in reversed(SIGNATURES.items()):
        op.execute(f"DROP FUNCTION {name}({args})")
    for sql in PREVIOUS.values():
        op.execute(sql)
