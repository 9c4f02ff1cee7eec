"""recurring expenses: rules that make an ordinary expense on each date of a schedule, exactly once

- recurring_rules: the expense body to repeat (`template`, validated and normalised by the service),
  the schedule (`every`, `repeat_interval`, `start_date`, `end_date` or `count`), where the rule is
  (`next_index`/`next_date`: the next occurrence to make; `last_date`: the last made or skipped),
  whether it is `active` (else `stop_reason`, `stopped_at`), a `version` that changes with every
  change of state, and `claimed_until`, the lease a scheduler takes on it (work sharing only).
- expenses: `recurring_id` and `occurrence_date` (the date as scheduled; `date` may be edited later),
  with a unique index on the pair: each (rule, occurrence date) is at most one expense, whatever runs.
- quits_expense_create makes an occurrence in the same statement as it advances the rule
  (quits_recurring_advance: the rule locked, active, at the version read and due on that date, else
  QUR12 and nothing is written); quits_recurring_create and quits_recurring_update write the rules
  (with their activity: recurring.created, recurring.updated, recurring.stopped).
- The service's role (migration f9708ea38f85), when there is one: rules are never deleted, and their
  id, group and creator never change; an expense's occurrence key never changes (column grants).

Functions: the new and changed ones, frozen here (sources: app/sql); downgrade restores migration
a7c9e1f3b008's quits_expense_create. Downgrade refuses while any recurring rule exists (the schema
before this migration cannot hold it).

Revision ID: 4fdff58b4738
Revises: c9e1f3a5b011
Create Date: 2026-12-03 12:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "4fdff58b4738"
down_revision: str | None = "c9e1f3a5b011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RULES = """
CREATE TABLE recurring_rules (
    id uuid NOT NULL,
    group_id uuid NOT NULL,
    template jsonb NOT NULL,
    every varchar(5) NOT NULL,
    repeat_interval integer NOT NULL,
    start_date date NOT NULL,
    end_date date,
    count integer,
    next_index integer NOT NULL,
    next_date date,
    last_date date,
    active boolean NOT NULL,
    stop_reason varchar(32),
    stopped_at timestamptz,
    version quits_version NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL,
    updated_by uuid NOT NULL,
    updated_at timestamptz NOT NULL,
    claimed_until timestamptz,
    CONSTRAINT pk_recurring_rules PRIMARY KEY (id),
    CONSTRAINT fk_recurring_rules_group_id_groups FOREIGN KEY (group_id) REFERENCES groups (id),
    CONSTRAINT fk_recurring_rules_created_by_users FOREIGN KEY (created_by) REFERENCES users (id),
    CONSTRAINT ck_recurring_rules_schedule CHECK (
        every IN ('day', 'week', 'month', 'year') AND repeat_interval BETWEEN 1 AND 366
        AND (count IS NULL OR count BETWEEN 1 AND 10000) AND (count IS NULL OR end_date IS NULL)
        AND (end_date IS NULL OR end_date >= start_date)),
    CONSTRAINT ck_recurring_rules_state CHECK (
        next_index >= 0 AND active = (next_date IS NOT NULL) AND active = (stop_reason IS NULL)
        AND active = (stopped_at IS NULL) AND (next_date IS NULL OR last_date IS NULL OR next_date > last_date))
)
"""
RULE_INDEXES = [
    # The schedulers' claim: due active rules in date order.
    "CREATE INDEX ix_recurring_rules_next_date_id ON recurring_rules (next_date, id) WHERE active",
    "CREATE INDEX ix_recurring_rules_group_id_created_at_id ON recurring_rules (group_id, created_at, id)",
]
EXPENSE_COLUMNS = """
ALTER TABLE expenses ADD COLUMN recurring_id uuid, ADD COLUMN occurrence_date date,
    ADD CONSTRAINT fk_expenses_recurring_id_recurring_rules FOREIGN KEY (recurring_id) REFERENCES recurring_rules (id),
    ADD CONSTRAINT ck_expenses_occurrence CHECK ((recurring_id IS NULL) = (occurrence_date IS NULL))
"""
OCCURRENCE_KEY = (
    "CREATE UNIQUE INDEX uq_expenses_recurring_id_occurrence_date ON expenses (recurring_id, occurrence_date)"
    " WHERE recurring_id IS NOT NULL"
)

FUNCTIONS = {
    "quits_check_members": """
-- For writes that post nothing (recurring rules): QUG04 unless p_caller is a member of p_group; QUM22
-- for the first of p_members ([[field, user_id], ...]) who is not a current member. Takes no locks:
-- each occurrence checks again, under its balance locks.
CREATE OR REPLACE FUNCTION quits_check_members(p_group uuid, p_caller uuid, p_members jsonb) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_present uuid[];
BEGIN
    PERFORM 1 FROM memberships m WHERE m.group_id = p_group AND m.user_id = p_caller;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group not found' USING ERRCODE = 'QUG04';
    END IF;
    SELECT coalesce(array_agg(m.user_id), '{}') INTO v_present FROM memberships m
    WHERE m.group_id = p_group AND m.user_id IN (SELECT (e->>1)::uuid FROM jsonb_array_elements(p_members) e);
    PERFORM quits_require_members(v_present, p_members);
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
    "quits_expense_create": """
-- Command: create an expense, in one statement (called in autocommit: one round trip, row locks held
-- only for the database's own time). p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "expense": <an expenses row, version 1>,
--    "entries": [[user_id, amount_minor], ...], "members": [[field, user_id], ...],
--    "occurrence"?: {see quits_recurring_advance}}
-- Claims the key (a replay returns the stored response), advances the recurring rule when the expense
-- is one of its occurrences (expense.recurring_id set), locks one random balance slot of every user,
-- checks they are current members, inserts the expense (read from the command by the INSERT itself),
-- posts its entries and records the activity.
CREATE OR REPLACE FUNCTION quits_expense_create(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_slot integer := floor(random() * quits_balance_slots())::integer;
    v_recurring uuid := (p_cmd->'expense'->>'recurring_id')::uuid;
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
    IF v_recurring IS NOT NULL THEN
        PERFORM quits_recurring_advance(
            p_group, jsonb_populate_record(NULL::expenses, p_cmd->'expense'), p_cmd->'occurrence'
        );
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
    INSERT INTO activity (group_id, id, type, actor_id, created_at, expense_id, detail)
    VALUES (p_group, quits_uuid7(), 'expense.created', v_caller, v_created_at, v_id,
            CASE WHEN v_recurring IS NOT NULL THEN jsonb_build_object(
                'recurring_id', v_recurring, 'occurrence_date', p_cmd->'expense'->>'occurrence_date') END);
END
$$;
""",
    "quits_recurring_create": """
-- Command: create a recurring rule. p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "rule": <a recurring_rules row, version 1>,
--    "members": [[field, user_id], ...]}
-- Claims the key (a replay returns the stored response), checks the caller and every payer and
-- participant are current members, inserts the rule and records recurring.created.
CREATE OR REPLACE FUNCTION quits_recurring_create(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_rule recurring_rules := jsonb_populate_record(NULL::recurring_rules, p_cmd->'rule');
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
    IF v_rule.group_id IS DISTINCT FROM p_group OR v_rule.version <> 1 OR NOT v_rule.active THEN
        RAISE EXCEPTION 'a new recurring rule must be active version 1 of this group' USING ERRCODE = 'QUL00';
    END IF;
    PERFORM quits_check_members(p_group, v_caller, p_cmd->'members');
    INSERT INTO recurring_rules SELECT (v_rule).*;
    INSERT INTO activity (group_id, id, type, actor_id, created_at, detail)
    VALUES (p_group, quits_uuid7(), 'recurring.created', v_caller, v_rule.created_at,
            jsonb_build_object('recurring_id', v_rule.id));
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
}
NEW_SIGNATURES = {
    "quits_recurring_update": "uuid, jsonb",
    "quits_recurring_create": "uuid, jsonb",
    "quits_recurring_advance": "uuid, expenses, jsonb",
    "quits_check_members": "uuid, uuid, jsonb",
}
PREVIOUS = {
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
}

# Expense columns the service may update (edits and voids): everything but the keys, the creator and
# the occurrence key, which only an INSERT sets.
EXPENSE_UPDATABLE = (
    "description, currency, amount_minor, exchange_rate, group_currency, group_amount_minor, paid_by, payers,"
    " split_type, shares, date, category, notes, version, updated_by, updated_at, voided_at"
)
RULE_UPDATABLE = (
    "template, every, repeat_interval, start_date, end_date, count, next_index, next_date, last_date, active,"
    " stop_reason, stopped_at, version, updated_by, updated_at, claimed_until"
)
APP_ROLE_GRANTS = f"""
DO $grants$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'quits_app') THEN
        REVOKE ALL ON recurring_rules FROM quits_app;
        GRANT SELECT, INSERT ON recurring_rules TO quits_app;
        GRANT UPDATE ({RULE_UPDATABLE}) ON recurring_rules TO quits_app;
        REVOKE UPDATE ON expenses FROM quits_app;
        GRANT UPDATE ({EXPENSE_UPDATABLE}) ON expenses TO quits_app;
    END IF;
END
$grants$
"""
APP_ROLE_REVOKES = """
DO $grants$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'quits_app') THEN
        REVOKE UPDATE ON expenses FROM quits_app;
        GRANT UPDATE ON expenses TO quits_app;
    END IF;
END
$grants$
"""
REFUSE_DOWNGRADE = """
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM recurring_rules) THEN
        RAISE EXCEPTION 'cannot downgrade: recurring rules exist (the schema before 4fdff58b4738 cannot hold them)';
    END IF;
END $$
"""


def upgrade() -> None:
    op.execute(RULES)
    for sql in RULE_INDEXES:
        op.execute(sql)
    op.execute(EXPENSE_COLUMNS)
    op.execute(OCCURRENCE_KEY)
    for sql in FUNCTIONS.values():
        op.execute(sql)
    op.execute(APP_ROLE_GRANTS)


def downgrade() -> None:
    op.execute(REFUSE_DOWNGRADE)
    op.execute(APP_ROLE_REVOKES)
    for sql in PREVIOUS.values():
        op.execute(sql)
    for name, args in NEW_SIGNATURES.items():
        op.execute(f"DROP FUNCTION {name}({args})")
    op.execute("DROP INDEX uq_expenses_recurring_id_occurrence_date")
    op.execute(
        "ALTER TABLE expenses DROP CONSTRAINT ck_expenses_occurrence,"
        " DROP CONSTRAINT fk_expenses_recurring_id_recurring_rules, DROP COLUMN occurrence_date, DROP COLUMN recurring_id"
    )
    op.execute("DROP TABLE recurring_rules")
