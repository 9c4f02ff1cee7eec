-- Command: remove a member whose net is zero. p_cmd: {"caller": uuid, "user_id": uuid}.
-- Locks every slot of the member (as every other writer, in slot order); QUM04 when they are not
-- a member, QUM09 when their net is not zero; deletes the membership (its slots go by cascade).
CREATE OR REPLACE FUNCTION quits_member_remove(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_user uuid := (p_cmd->>'user_id')::uuid;
    v_net bigint;
BEGIN
    replayed := false;
    SELECT l.net_minor INTO v_net FROM quits_lock_members(p_group, (p_cmd->>'caller')::uuid, ARRAY[v_user]) l;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member not found' USING ERRCODE = 'QUM04';
    END IF;
    IF v_net <> 0 THEN
        RAISE EXCEPTION 'a member whose net balance is not zero cannot be removed' USING ERRCODE = 'QUM09';
    END IF;
    DELETE FROM memberships m WHERE m.group_id = p_group AND m.user_id = v_user;
    INSERT INTO activity (group_id, id, type, actor_id, user_id)
    VALUES (p_group, quits_uuid7(), 'member.removed', (p_cmd->>'caller')::uuid, v_user);
END
$$;
