-- Lock slot p_slot of each of p_users in ascending user_id order; return the users locked (those who
-- are current members). QUG04 unless p_caller is a member. Used by expenses, which need no whole net.
CREATE OR REPLACE FUNCTION quits_lock_slot(p_group uuid, p_caller uuid, p_users uuid[], p_slot integer)
RETURNS uuid[]
LANGUAGE plpgsql
AS $$
DECLARE
    v_locked uuid[];
BEGIN
    PERFORM 1 FROM memberships m WHERE m.group_id = p_group AND m.user_id = p_caller;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group not found' USING ERRCODE = 'QUG04';
    END IF;
    SELECT array_agg(l.user_id) INTO v_locked FROM (
        SELECT b.user_id FROM balances b
        WHERE b.group_id = p_group AND b.slot = p_slot AND b.user_id = ANY(p_users)
        ORDER BY b.user_id
        FOR UPDATE
    ) l;
    RETURN coalesce(v_locked, '{}');
END
$$;
