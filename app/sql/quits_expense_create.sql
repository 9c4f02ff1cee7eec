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
