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
