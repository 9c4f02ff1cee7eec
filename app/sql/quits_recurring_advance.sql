-- Part of quits_expense_create, for an occurrence of a recurring rule (p_expense.recurring_id set):
-- locks the rule and checks that it is active, still at p_occ.expected_version and that its next
-- date is p_expense.occurrence_date (else QUR12: another worker made it, or the rule was edited,
-- skipped or stopped since it was read, and nothing is written); then moves it to its next
-- occurrence. p_occ: {"expected_version": int, "next_date": date | null (null: that was the last)}.
-- A last occurrence stops the rule (reason "finished", recorded in the activity just after the
-- expense's own entry). The unique index
-- uq_expenses_group_id_recurring_id_occurrence_date stays the final guard of one expense per (rule, date).
CREATE OR REPLACE FUNCTION quits_recurring_advance(p_group uuid, p_expense expenses, p_occ jsonb) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_rule recurring_rules;
    v_next date := (p_occ->>'next_date')::date;
BEGIN
    SELECT * INTO v_rule FROM recurring_rules r
    WHERE r.id = p_expense.recurring_id AND r.group_id = p_group
    FOR UPDATE;
    IF NOT FOUND OR NOT v_rule.active OR v_rule.version IS DISTINCT FROM (p_occ->>'expected_version')::integer
       OR v_rule.next_date IS DISTINCT FROM p_expense.occurrence_date THEN
        RAISE EXCEPTION 'the recurring rule has changed' USING ERRCODE = 'QUR12';
    END IF;
    IF v_next IS NOT NULL AND v_next <= p_expense.occurrence_date THEN
        RAISE EXCEPTION 'occurrences must move forward' USING ERRCODE = 'QUL00';
    END IF;
    UPDATE recurring_rules SET
        next_index = next_index + 1, next_date = v_next, last_date = p_expense.occurrence_date,
        active = v_next IS NOT NULL,
        stop_reason = CASE WHEN v_next IS NULL THEN 'finished' END,
        stopped_at = CASE WHEN v_next IS NULL THEN p_expense.created_at END,
        version = version + 1, claimed_until = NULL
    WHERE group_id = p_group AND id = v_rule.id;
    IF v_next IS NULL THEN
        INSERT INTO activity (group_id, id, type, actor_id, created_at, detail)
        VALUES (p_group, quits_uuid7(), 'recurring.stopped', p_expense.created_by,
                p_expense.created_at + interval '1 microsecond',
                jsonb_build_object('recurring_id', v_rule.id, 'reason', 'finished',
                                   'message', 'the last occurrence was made'));
    END IF;
END
$$;
