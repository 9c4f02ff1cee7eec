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
