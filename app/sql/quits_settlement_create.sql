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
