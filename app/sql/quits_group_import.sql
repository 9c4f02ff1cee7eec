-- Command: import a group, in one statement (called in one transaction, with the import's own
-- statement_timeout). p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "source": "quits" | "ihatemoney" | "splitwise",
--    "group": <a groups row, created_by the caller>, "guests": [<a users row: id, name, created_at>, ...],
--    "members": [user_id, ...] (the caller first, then every guest), "former": [user_id, ...] (guests who
--    left the source group: their nets must come out zero), "expenses": [<an expenses row>, ...],
--    "versions": [<an expense_versions row>, ...], "settlements": [<a settlements row>, ...],
--    "expense_defaults": <an expenses row>, "settlement_defaults": <a settlements row>}
-- (each expense and settlement row is read over its defaults: the columns a row leaves out are theirs)
-- Claims the key (a replay returns the stored response), creates the group, the guests (no email,
-- token or password: only guests can be made here) and the memberships, stores every record as
-- given (each must belong to the new group), opens its ledger through quits_post_import, removes the
-- former members and records the activity: member.added for each person; expense.created,
-- expense.updated (each later version), expense.voided, settlement.created and settlement.voided at
-- the record's own time; member.removed for the former members; actor: the caller; detail:
-- {"imported": source}. Nothing is written unless all of it is (QUL00 for a broken invariant).
CREATE OR REPLACE FUNCTION quits_group_import(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_group groups := jsonb_populate_record(NULL::groups, p_cmd->'group');
    v_detail jsonb := jsonb_build_object('imported', p_cmd->>'source');
    v_members uuid[] := ARRAY(SELECT (m #>> '{}')::uuid FROM jsonb_array_elements(p_cmd->'members') m);
    v_former uuid[] := ARRAY(SELECT (m #>> '{}')::uuid FROM jsonb_array_elements(p_cmd->'former') m);
    v_guests uuid[];
    v_count bigint;
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
    IF v_group.id IS DISTINCT FROM p_group OR v_group.created_by IS DISTINCT FROM v_caller
       OR v_members[1] IS DISTINCT FROM v_caller OR NOT v_former <@ v_members OR v_caller = ANY(v_former) THEN
        RAISE EXCEPTION 'an import must create its own group, with the caller as its first member'
            USING ERRCODE = 'QUL00';
    END IF;
    INSERT INTO groups SELECT (v_group).*;
    WITH made AS (
        INSERT INTO users (id, name, email, password_hash, guest, created_at)
        SELECT u.id, u.name, NULL, NULL, true, v_group.created_at
        FROM jsonb_populate_recordset(NULL::users, p_cmd->'guests') u
        RETURNING id
    )
    SELECT coalesce(array_agg(id), '{}') INTO v_guests FROM made;
    IF cardinality(v_members) <> 1 + cardinality(v_guests) OR NOT v_members[2:] <@ v_guests THEN
        RAISE EXCEPTION 'an import''s members are the caller and the guests it creates' USING ERRCODE = 'QUL00';
    END IF;
    INSERT INTO memberships (group_id, user_id, joined_at)
    SELECT p_group, m.u, v_group.created_at FROM unnest(v_members) m(u);
    INSERT INTO expenses SELECT * FROM jsonb_populate_recordset(
        jsonb_populate_record(NULL::expenses, p_cmd->'expense_defaults'), p_cmd->'expenses');
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count <> (SELECT count(*) FROM expenses e WHERE e.group_id = p_group) THEN
        RAISE EXCEPTION 'an imported expense belongs to another group' USING ERRCODE = 'QUL00';
    END IF;
    INSERT INTO expense_versions SELECT * FROM jsonb_populate_recordset(NULL::expense_versions, p_cmd->'versions');
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count <> (SELECT count(*) FROM expense_versions v
                   JOIN expenses e ON e.id = v.expense_id AND e.group_id = p_group AND v.version < e.version
                   WHERE v.group_id = p_group) THEN
        RAISE EXCEPTION 'an imported expense version cites no earlier version of an expense of the group'
            USING ERRCODE = 'QUL00';
    END IF;
    INSERT INTO settlements SELECT * FROM jsonb_populate_recordset(
        jsonb_populate_record(NULL::settlements, p_cmd->'settlement_defaults'), p_cmd->'settlements');
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count <> (SELECT count(*) FROM settlements s WHERE s.group_id = p_group) THEN
        RAISE EXCEPTION 'an imported settlement belongs to another group' USING ERRCODE = 'QUL00';
    END IF;
    PERFORM quits_post_import(p_group);
    IF EXISTS (SELECT 1 FROM member_balances m WHERE m.group_id = p_group AND m.user_id = ANY(v_former)
               AND m.net_minor <> 0) THEN
        RAISE EXCEPTION 'a former member''s imported net is not zero' USING ERRCODE = 'QUL00';
    END IF;
    INSERT INTO activity (group_id, id, type, actor_id, created_at, expense_id, settlement_id, user_id, detail)
    SELECT p_group, quits_uuid7(), a.type, v_caller, a.at, a.expense_id, a.settlement_id, a.user_id, v_detail
    FROM (
        SELECT 'member.added', v_group.created_at, NULL::uuid, NULL::uuid, m.u FROM unnest(v_members) m(u)
        UNION ALL
        SELECT 'expense.created', e.created_at, e.id, NULL, NULL FROM expenses e WHERE e.group_id = p_group
        UNION ALL
        SELECT 'expense.updated', v.updated_at, v.expense_id, NULL, NULL
        FROM expense_versions v WHERE v.group_id = p_group AND v.version > 1
        UNION ALL
        SELECT 'expense.updated', e.updated_at, e.id, NULL, NULL FROM expenses e
        WHERE e.group_id = p_group AND e.version > 1
        UNION ALL
        SELECT 'expense.voided', e.voided_at, e.id, NULL, NULL FROM expenses e
        WHERE e.group_id = p_group AND e.voided_at IS NOT NULL
        UNION ALL
        SELECT 'settlement.created', s.created_at, NULL, s.id, NULL FROM settlements s WHERE s.group_id = p_group
        UNION ALL
        SELECT 'settlement.voided', s.voided_at, NULL, s.id, NULL FROM settlements s
        WHERE s.group_id = p_group AND s.voided_at IS NOT NULL
        UNION ALL
        SELECT 'member.removed', v_group.created_at, NULL, NULL, f.u FROM unnest(v_former) f(u)
    ) a(type, at, expense_id, settlement_id, user_id)
    ORDER BY a.at;
    DELETE FROM memberships m WHERE m.group_id = p_group AND m.user_id = ANY(v_former);
END
$$;
