-- Command: edit an expense. p_cmd:
--   {"caller": uuid, "claim"?: {see quits_claim_key}, "expected_version": int | null,
--    "expense": <the expenses row as it will be, version = expected + 1>,
--    "previous": <the current version as the API renders it, kept in expense_versions>,
--    "entries": [[user_id, amount_minor], ...], "members": [[field, user_id], ...]}
-- Locks the expense (quits_lock_expense), then every slot of its old and new users; QUX09 when a
-- user of the current version is no longer a member. Keeps the current version in expense_versions,
-- reverses its entries, stores the new version, posts its entries and records the activity.
CREATE OR REPLACE FUNCTION quits_expense_edit(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_caller uuid := (p_cmd->>'caller')::uuid;
    v_new expenses := jsonb_populate_record(NULL::expenses, p_cmd->'expense');
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
    v_old := quits_lock_expense(p_group, v_caller, v_new.id, (p_cmd->>'expected_version')::integer);
    IF v_new.version <> v_old.version + 1 THEN
        RAISE EXCEPTION 'an edit must make version %', v_old.version + 1 USING ERRCODE = 'QUL00';
    END IF;
    v_old_users := quits_expense_users(v_old);
    SELECT array_agg(l.user_id) INTO v_locked FROM quits_lock_members(
        p_group, v_caller, v_old_users || ARRAY(SELECT (m->>1)::uuid FROM jsonb_array_elements(p_cmd->'members') m)
    ) l;
    IF NOT v_old_users <@ coalesce(v_locked, '{}') THEN
        RAISE EXCEPTION 'the expense involves someone who is no longer a member' USING ERRCODE = 'QUX09';
    END IF;
    PERFORM quits_require_members(v_locked, p_cmd->'members');
    INSERT INTO expense_versions (group_id, expense_id, version, doc, updated_by, updated_at)
    VALUES (p_group, v_old.id, v_old.version, p_cmd->'previous', v_old.updated_by, v_old.updated_at);
    PERFORM quits_reverse_expense(p_group, v_old.id, v_old.version);
    UPDATE expenses SET
        description = v_new.description, currency = v_new.currency, amount_minor = v_new.amount_minor,
        exchange_rate = v_new.exchange_rate, group_amount_minor = v_new.group_amount_minor,
        paid_by = v_new.paid_by, payers = v_new.payers, split_type = v_new.split_type, shares = v_new.shares,
        date = v_new.date, category = v_new.category, notes = v_new.notes, version = v_new.version,
        updated_by = v_new.updated_by, updated_at = v_new.updated_at
    WHERE group_id = p_group AND id = v_old.id;
    PERFORM quits_post(p_group, p_cmd->'entries', 'expense', v_new.id, v_new.version, NULL, 0);
    INSERT INTO activity (group_id, id, type, actor_id, created_at, expense_id)
    VALUES (p_group, quits_uuid7(), 'expense.updated', v_caller, v_new.updated_at, v_new.id);
END
$$;
