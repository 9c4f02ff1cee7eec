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
