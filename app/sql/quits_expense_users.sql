-- Everyone an expense row involves: every payer and every participant of its shares.
CREATE OR REPLACE FUNCTION quits_expense_users(p_expense expenses) RETURNS uuid[]
LANGUAGE sql IMMUTABLE
AS $$
    SELECT array_agg(DISTINCT u) FROM (
        SELECT (p->>0)::uuid AS u FROM jsonb_array_elements(p_expense.payers) p
        UNION ALL
        SELECT (s->>0)::uuid FROM jsonb_array_elements(p_expense.shares) s
    ) users
$$;
