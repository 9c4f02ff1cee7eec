-- Command: create an expense, in one statement (called in autocommit: one round trip, row locks held
-- only for the database's own time). p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "expense": <an expenses row, version 1>,
--    "entries": [[user_id, amount_minor], ...], "members": [[field, user_id], ...],
--    "occurrence"?: {see quits_recurring_advance}}
-- Claims the key (a replay returns the stored response), advances the recurring rule when the expense
-- is one of its occurrences (expense.recurring_id set), locks one random balance slot of every user,
-- checks they are current members, inserts the expense and posts its entries.
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
    IF v_expense.recurring_id IS NOT NULL THEN
        PERFORM quits_recurring_advance(p_group, v_expense, p_cmd->'occurrence');
    END IF;
    v_members := ARRAY(SELECT (m->>1)::uuid FROM jsonb_array_elements(p_cmd->'members') m);
    v_locked := quits_lock_slot(p_group, v_caller, v_members, v_slot);
    IF NOT v_members <@ v_locked THEN
        PERFORM quits_require_members(v_locked, p_cmd->'members');
    END IF;
    INSERT INTO expenses SELECT (v_expense).*;
    PERFORM quits_post(p_group, p_cmd->'entries', 'expense', v_expense.id, 1, NULL, v_slot);
    INSERT INTO activity (group_id, id, type, actor_id, created_at, expense_id, detail)
    VALUES (p_group, quits_uuid7(), 'expense.created', v_caller, v_expense.created_at, v_expense.id,
            CASE WHEN v_expense.recurring_id IS NOT NULL THEN jsonb_build_object(
                'recurring_id', v_expense.recurring_id, 'occurrence_date', v_expense.occurrence_date) END);
END
$$;
