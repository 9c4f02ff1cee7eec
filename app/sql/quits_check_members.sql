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
