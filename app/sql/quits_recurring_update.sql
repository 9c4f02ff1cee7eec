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
