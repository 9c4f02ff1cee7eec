-- Lock an expense of the group for an edit or a void, after checking the caller is a member (QUG04).
-- QUX04: no such expense in the group. QUX10: already voided. QUX12: its version is not
-- p_expected_version (DETAIL: the current version); a null p_expected_version accepts any.
CREATE OR REPLACE FUNCTION quits_lock_expense(
    p_group uuid, p_caller uuid, p_expense_id uuid, p_expected_version integer
) RETURNS expenses
LANGUAGE plpgsql
AS $$
DECLARE
    v_expense expenses;
BEGIN
    PERFORM 1 FROM memberships m WHERE m.group_id = p_group AND m.user_id = p_caller;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group not found' USING ERRCODE = 'QUG04';
    END IF;
    SELECT * INTO v_expense FROM expenses e WHERE e.id = p_expense_id AND e.group_id = p_group FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'expense not found' USING ERRCODE = 'QUX04';
    END IF;
    IF v_expense.voided_at IS NOT NULL THEN
        RAISE EXCEPTION 'the expense is voided' USING ERRCODE = 'QUX10';
    END IF;
    IF v_expense.version <> coalesce(p_expected_version, v_expense.version) THEN
        RAISE EXCEPTION 'the expense has changed' USING ERRCODE = 'QUX12', DETAIL = v_expense.version::text;
    END IF;
    RETURN v_expense;
END
$$;
