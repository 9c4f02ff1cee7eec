-- Post the exact negation of an expense version's entries (kind 'reversal'), to slot 0. The caller
-- holds the expense row and every slot of its users locked. QUL00 if the version posted nothing.
CREATE OR REPLACE FUNCTION quits_reverse_expense(p_group uuid, p_expense_id uuid, p_version integer)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_entries jsonb;
BEGIN
    SELECT jsonb_agg(jsonb_build_array(l.user_id, -l.amount_minor) ORDER BY l.seq) INTO v_entries
    FROM ledger_entries l
    WHERE l.group_id = p_group AND l.expense_id = p_expense_id AND l.expense_version = p_version
      AND l.kind = 'expense';
    IF v_entries IS NULL THEN
        RAISE EXCEPTION 'expense % version % has no entries', p_expense_id, p_version USING ERRCODE = 'QUL00';
    END IF;
    PERFORM quits_post(p_group, v_entries, 'reversal', p_expense_id, p_version, NULL, 0);
END
$$;
