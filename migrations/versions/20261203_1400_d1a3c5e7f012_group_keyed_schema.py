"""group-keyed schema: every key of a group's rows includes group_id (the way to Citus, docs/scaling.md)

Citus distributes a table by one column and checks a primary key or unique constraint on one shard only
when it includes that column. With group_id as the distribution column of every group-scoped table:

- expenses, settlements and recurring_rules: primary key (group_id, id) (was (id));
- ledger_entries: primary key (group_id, seq) (was (seq); the index (group_id, seq) it replaces is
  dropped: one index fewer per entry) and unique (group_id, id) (was (id));
- an occurrence of a recurring rule: unique (group_id, recurring_id, occurrence_date), and the expense
  references its rule by (group_id, recurring_id) -> recurring_rules (group_id, id): no foreign key
  joins two groups' rows;
- invites: primary key (group_id, code_hash) (was (code_hash)); the claim, which has only the code,
  finds it by the plain index ix_invites_code_hash (the SHA-256 of 32 random bytes: unique without a
  constraint).

Functions: every UPDATE and lookup in the write functions names the group (so each statement uses the new
keys, and a function delegated to the group's shard stays there): quits_expense_edit, quits_expense_void,
quits_settlement_void, quits_recurring_advance, quits_recurring_update, quits_reverse_expense, frozen here
(sources: app/sql). Downgrade restores the keys and those functions as they were before (as migrations
4fdff58b4738 and earlier left them; c9e1f3a5d010 changed none of them); it fails if two groups' rows share
an id (which the previous keys cannot hold).

Revision ID: d1a3c5e7f012
Revises: c9e1f3a5d010
Create Date: 2026-12-03 14:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "d1a3c5e7f012"
down_revision: str | None = "c9e1f3a5d010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = [
    "ALTER TABLE expenses DROP CONSTRAINT fk_expenses_recurring_id_recurring_rules",
    "DROP INDEX uq_expenses_recurring_id_occurrence_date",
    "ALTER TABLE recurring_rules DROP CONSTRAINT pk_recurring_rules, ADD CONSTRAINT pk_recurring_rules PRIMARY KEY (group_id, id)",
    "ALTER TABLE expenses DROP CONSTRAINT pk_expenses, ADD CONSTRAINT pk_expenses PRIMARY KEY (group_id, id)",
    "CREATE UNIQUE INDEX uq_expenses_group_id_recurring_id_occurrence_date"
    " ON expenses (group_id, recurring_id, occurrence_date) WHERE recurring_id IS NOT NULL",
    "ALTER TABLE expenses ADD CONSTRAINT fk_expenses_recurring_rule"
    " FOREIGN KEY (group_id, recurring_id) REFERENCES recurring_rules (group_id, id)",
    "ALTER TABLE settlements DROP CONSTRAINT pk_settlements, ADD CONSTRAINT pk_settlements PRIMARY KEY (group_id, id)",
    "ALTER TABLE ledger_entries DROP CONSTRAINT pk_ledger_entries, ADD CONSTRAINT pk_ledger_entries PRIMARY KEY (group_id, seq)",
    "DROP INDEX ix_ledger_entries_group_id_seq",
    "ALTER TABLE ledger_entries DROP CONSTRAINT uq_ledger_entries_id,"
    " ADD CONSTRAINT uq_ledger_entries_group_id_id UNIQUE (group_id, id)",
    "ALTER TABLE invites DROP CONSTRAINT pk_invites, ADD CONSTRAINT pk_invites PRIMARY KEY (group_id, code_hash)",
    "CREATE INDEX ix_invites_code_hash ON invites (code_hash)",
]
PREVIOUS_KEYS = [
    "DROP INDEX ix_invites_code_hash",
    "ALTER TABLE invites DROP CONSTRAINT pk_invites, ADD CONSTRAINT pk_invites PRIMARY KEY (code_hash)",
    "ALTER TABLE ledger_entries DROP CONSTRAINT uq_ledger_entries_group_id_id, ADD CONSTRAINT uq_ledger_entries_id UNIQUE (id)",
    "CREATE INDEX ix_ledger_entries_group_id_seq ON ledger_entries (group_id, seq)",
    "ALTER TABLE ledger_entries DROP CONSTRAINT pk_ledger_entries, ADD CONSTRAINT pk_ledger_entries PRIMARY KEY (seq)",
    "ALTER TABLE settlements DROP CONSTRAINT pk_settlements, ADD CONSTRAINT pk_settlements PRIMARY KEY (id)",
    "ALTER TABLE expenses DROP CONSTRAINT fk_expenses_recurring_rule",
    "DROP INDEX uq_expenses_group_id_recurring_id_occurrence_date",
    "ALTER TABLE expenses DROP CONSTRAINT pk_expenses, ADD CONSTRAINT pk_expenses PRIMARY KEY (id)",
    "ALTER TABLE recurring_rules DROP CONSTRAINT pk_recurring_rules, ADD CONSTRAINT pk_recurring_rules PRIMARY KEY (id)",
    "CREATE UNIQUE INDEX uq_expenses_recurring_id_occurrence_date"
    " ON expenses (recurring_id, occurrence_date) WHERE recurring_id IS NOT NULL",
    "ALTER TABLE expenses ADD CONSTRAINT fk_expenses_recurring_id_recurring_rules"
    " FOREIGN KEY (recurring_id) REFERENCES recurring_rules (id)",
]
FUNCTIONS = {
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
    WHERE group_id = p_group AND id = v_old.id;
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
    UPDATE expenses SET voided_at = v_voided_at WHERE group_id = p_group AND id = v_old.id;
    INSERT INTO activity (group_id, id, type, actor_id, created_at, expense_id)
    VALUES (p_group, quits_uuid7(), 'expense.voided', v_caller, v_voided_at, v_old.id);
END
$$;
""",
    "quits_recurring_advance": """
-- Part of quits_expense_create, for an occurrence of a recurring rule (p_expense.recurring_id set):
-- locks the rule and checks that it is active, still at p_occ.expected_version and that its next
-- date is p_expense.occurrence_date (else QUR12: another worker made it, or the rule was edited,
-- skipped or stopped since it was read, and nothing is written); then moves it to its next
-- occurrence. p_occ: {"expected_version": int, "next_date": date | null (null: that was the last)}.
-- A last occurrence stops the rule (reason "finished", recorded in the activity just after the
-- expense's own entry). The unique index
-- uq_expenses_group_id_recurring_id_occurrence_date stays the final guard of one expense per (rule, date).
CREATE OR REPLACE FUNCTION quits_recurring_advance(p_group uuid, p_expense expenses, p_occ jsonb) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_rule recurring_rules;
    v_next date := (p_occ->>'next_date')::date;
BEGIN
    SELECT * INTO v_rule FROM recurring_rules r
    WHERE r.id = p_expense.recurring_id AND r.group_id = p_group
    FOR UPDATE;
    IF NOT FOUND OR NOT v_rule.active OR v_rule.version IS DISTINCT FROM (p_occ->>'expected_version')::integer
       OR v_rule.next_date IS DISTINCT FROM p_expense.occurrence_date THEN
        RAISE EXCEPTION 'the recurring rule has changed' USING ERRCODE = 'QUR12';
    END IF;
    IF v_next IS NOT NULL AND v_next <= p_expense.occurrence_date THEN
        RAISE EXCEPTION 'occurrences must move forward' USING ERRCODE = 'QUL00';
    END IF;
    UPDATE recurring_rules SET
        next_index = next_index + 1, next_date = v_next, last_date = p_expense.occurrence_date,
        active = v_next IS NOT NULL,
        stop_reason = CASE WHEN v_next IS NULL THEN 'finished' END,
        stopped_at = CASE WHEN v_next IS NULL THEN p_expense.created_at END,
        version = version + 1, claimed_until = NULL
    WHERE group_id = p_group AND id = v_rule.id;
    IF v_next IS NULL THEN
        INSERT INTO activity (group_id, id, type, actor_id, created_at, detail)
        VALUES (p_group, quits_uuid7(), 'recurring.stopped', p_expense.created_by,
                p_expense.created_at + interval '1 microsecond',
                jsonb_build_object('recurring_id', v_rule.id, 'reason', 'finished',
                                   'message', 'the last occurrence was made'));
    END IF;
END
$$;
""",
    "quits_recurring_update": """
-- Command: change a recurring rule (edit, skip, stop; and the scheduler's stop when an occurrence can
-- no longer be made). p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "expected_version": int,
--    "rule": <the recurring_rules row as it will be, version = expected + 1>,
--    "members"?: [[field, user_id], ...] (an edit: who must be current members),
--    "at": timestamptz, "activity": [{"type", "detail"}, ...] (recorded at "at", one microsecond apart),
--    "scheduler"?: true (the caller need not be a member)}
-- Locks the rule: QUR04 when it is not in the group, QUR10 when it is stopped, QUR12 when its
-- version is not the expected one (DETAIL: the current version). Stores the new state (created_by
-- and created_at never change; the lease is released) and records the activity.
CREATE OR REPLACE FUNCTION quits_recurring_update(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_new recurring_rules := jsonb_populate_record(NULL::recurring_rules, p_cmd->'rule');
    v_old recurring_rules;
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
    IF NOT (p_cmd ? 'scheduler') THEN
        PERFORM quits_check_members(p_group, v_caller, coalesce(p_cmd->'members', '[]'));
    END IF;
    SELECT * INTO v_old FROM recurring_rules r WHERE r.id = v_new.id AND r.group_id = p_group FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'recurring rule not found' USING ERRCODE = 'QUR04';
    END IF;
    IF NOT v_old.active THEN
        RAISE EXCEPTION 'the recurring rule is stopped' USING ERRCODE = 'QUR10';
    END IF;
    IF v_old.version IS DISTINCT FROM (p_cmd->>'expected_version')::integer THEN
        RAISE EXCEPTION 'the recurring rule has changed' USING ERRCODE = 'QUR12', DETAIL = v_old.version::text;
    END IF;
    IF v_new.version <> v_old.version + 1 THEN
        RAISE EXCEPTION 'a change must make version %', v_old.version + 1 USING ERRCODE = 'QUL00';
    END IF;
    UPDATE recurring_rules SET
        template = v_new.template, every = v_new.every, repeat_interval = v_new.repeat_interval,
        start_date = v_new.start_date, end_date = v_new.end_date, count = v_new.count,
        next_index = v_new.next_index, next_date = v_new.next_date, last_date = v_new.last_date,
        active = v_new.active, stop_reason = v_new.stop_reason, stopped_at = v_new.stopped_at,
        version = v_new.version, updated_by = v_new.updated_by, updated_at = v_new.updated_at,
        claimed_until = NULL
    WHERE group_id = p_group AND id = v_old.id;
    INSERT INTO activity (group_id, id, type, actor_id, created_at, detail)
    SELECT p_group, quits_uuid7(), a->>'type', v_caller,
           (p_cmd->>'at')::timestamptz + (t.n - 1) * interval '1 microsecond', a->'detail'
    FROM jsonb_array_elements(p_cmd->'activity') WITH ORDINALITY AS t(a, n)
    ORDER BY t.n;
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
    WHERE l.group_id = p_group AND l.expense_id = p_expense_id AND l.expense_version = p_version
      AND l.kind = 'expense';
    IF v_entries IS NULL THEN
        RAISE EXCEPTION 'expense % version % has no entries', p_expense_id, p_version USING ERRCODE = 'QUL00';
    END IF;
    PERFORM quits_post(p_group, v_entries, 'reversal', p_expense_id, p_version, NULL, 0);
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
    UPDATE settlements SET voided_at = v_voided_at WHERE group_id = p_group AND id = v_s.id;
    INSERT INTO activity (group_id, id, type, actor_id, created_at, settlement_id)
    VALUES (p_group, quits_uuid7(), 'settlement.voided', v_caller, v_voided_at, v_s.id);
END
$$;
""",
}
PREVIOUS = {
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
    "quits_recurring_advance": """
-- Part of quits_expense_create, for an occurrence of a recurring rule (p_expense.recurring_id set):
-- locks the rule and checks that it is active, still at p_occ.expected_version and that its next
-- date is p_expense.occurrence_date (else QUR12: another worker made it, or the rule was edited,
-- skipped or stopped since it was read, and nothing is written); then moves it to its next
-- occurrence. p_occ: {"expected_version": int, "next_date": date | null (null: that was the last)}.
-- A last occurrence stops the rule (reason "finished", recorded in the activity just after the
-- expense's own entry). The unique index
-- uq_expenses_recurring_id_occurrence_date stays the final guard of one expense per (rule, date).
CREATE OR REPLACE FUNCTION quits_recurring_advance(p_group uuid, p_expense expenses, p_occ jsonb) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_rule recurring_rules;
    v_next date := (p_occ->>'next_date')::date;
BEGIN
    SELECT * INTO v_rule FROM recurring_rules r
    WHERE r.id = p_expense.recurring_id AND r.group_id = p_group
    FOR UPDATE;
    IF NOT FOUND OR NOT v_rule.active OR v_rule.version IS DISTINCT FROM (p_occ->>'expected_version')::integer
       OR v_rule.next_date IS DISTINCT FROM p_expense.occurrence_date THEN
        RAISE EXCEPTION 'the recurring rule has changed' USING ERRCODE = 'QUR12';
    END IF;
    IF v_next IS NOT NULL AND v_next <= p_expense.occurrence_date THEN
        RAISE EXCEPTION 'occurrences must move forward' USING ERRCODE = 'QUL00';
    END IF;
    UPDATE recurring_rules SET
        next_index = next_index + 1, next_date = v_next, last_date = p_expense.occurrence_date,
        active = v_next IS NOT NULL,
        stop_reason = CASE WHEN v_next IS NULL THEN 'finished' END,
        stopped_at = CASE WHEN v_next IS NULL THEN p_expense.created_at END,
        version = version + 1, claimed_until = NULL
    WHERE id = v_rule.id;
    IF v_next IS NULL THEN
        INSERT INTO activity (group_id, id, type, actor_id, created_at, detail)
        VALUES (p_group, quits_uuid7(), 'recurring.stopped', p_expense.created_by,
                p_expense.created_at + interval '1 microsecond',
                jsonb_build_object('recurring_id', v_rule.id, 'reason', 'finished',
                                   'message', 'the last occurrence was made'));
    END IF;
END
$$;
""",
    "quits_recurring_update": """
-- Command: change a recurring rule (edit, skip, stop; and the scheduler's stop when an occurrence can
-- no longer be made). p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "expected_version": int,
--    "rule": <the recurring_rules row as it will be, version = expected + 1>,
--    "members"?: [[field, user_id], ...] (an edit: who must be current members),
--    "at": timestamptz, "activity": [{"type", "detail"}, ...] (recorded at "at", one microsecond apart),
--    "scheduler"?: true (the caller need not be a member)}
-- Locks the rule: QUR04 when it is not in the group, QUR10 when it is stopped, QUR12 when its
-- version is not the expected one (DETAIL: the current version). Stores the new state (created_by
-- and created_at never change; the lease is released) and records the activity.
CREATE OR REPLACE FUNCTION quits_recurring_update(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_new recurring_rules := jsonb_populate_record(NULL::recurring_rules, p_cmd->'rule');
    v_old recurring_rules;
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
    IF NOT (p_cmd ? 'scheduler') THEN
        PERFORM quits_check_members(p_group, v_caller, coalesce(p_cmd->'members', '[]'));
    END IF;
    SELECT * INTO v_old FROM recurring_rules r WHERE r.id = v_new.id AND r.group_id = p_group FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'recurring rule not found' USING ERRCODE = 'QUR04';
    END IF;
    IF NOT v_old.active THEN
        RAISE EXCEPTION 'the recurring rule is stopped' USING ERRCODE = 'QUR10';
    END IF;
    IF v_old.version IS DISTINCT FROM (p_cmd->>'expected_version')::integer THEN
        RAISE EXCEPTION 'the recurring rule has changed' USING ERRCODE = 'QUR12', DETAIL = v_old.version::text;
    END IF;
    IF v_new.version <> v_old.version + 1 THEN
        RAISE EXCEPTION 'a change must make version %', v_old.version + 1 USING ERRCODE = 'QUL00';
    END IF;
    UPDATE recurring_rules SET
        template = v_new.template, every = v_new.every, repeat_interval = v_new.repeat_interval,
        start_date = v_new.start_date, end_date = v_new.end_date, count = v_new.count,
        next_index = v_new.next_index, next_date = v_new.next_date, last_date = v_new.last_date,
        active = v_new.active, stop_reason = v_new.stop_reason, stopped_at = v_new.stopped_at,
        version = v_new.version, updated_by = v_new.updated_by, updated_at = v_new.updated_at,
        claimed_until = NULL
    WHERE id = v_old.id;
    INSERT INTO activity (group_id, id, type, actor_id, created_at, detail)
    SELECT p_group, quits_uuid7(), a->>'type', v_caller,
           (p_cmd->>'at')::timestamptz + (t.n - 1) * interval '1 microsecond', a->'detail'
    FROM jsonb_array_elements(p_cmd->'activity') WITH ORDINALITY AS t(a, n)
    ORDER BY t.n;
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
}


def upgrade() -> None:
    for sql in KEYS:
        op.execute(sql)
    for sql in FUNCTIONS.values():
        op.execute(sql)


def downgrade() -> None:
    for sql in PREVIOUS.values():
        op.execute(sql)
    for sql in PREVIOUS_KEYS:
        op.execute(sql)
