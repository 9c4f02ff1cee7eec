-- Lock every balance slot of p_users in ascending (user_id, slot) order and return the nets of those
-- who are current members (a user missing from the result is not a member). QUG04 unless p_caller
-- is a member: a group the caller is not in does not exist for them.
CREATE OR REPLACE FUNCTION quits_lock_members(p_group uuid, p_caller uuid, p_users uuid[])
RETURNS TABLE (user_id uuid, net_minor bigint)
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM 1 FROM memberships m WHERE m.group_id = p_group AND m.user_id = p_caller;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group not found' USING ERRCODE = 'QUG04';
    END IF;
    RETURN QUERY
        SELECT l.user_id, sum(l.net_minor)::bigint FROM (
            SELECT b.user_id, b.net_minor FROM balances b
            WHERE b.group_id = p_group AND b.user_id = ANY(p_users)
            ORDER BY b.user_id, b.slot
            FOR UPDATE
        ) l
        GROUP BY l.user_id ORDER BY l.user_id;
END
$$;
