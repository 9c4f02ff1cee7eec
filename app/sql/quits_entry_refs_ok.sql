-- The rule of ledger_entries' CHECK constraint kind_refs: an entry cites exactly one of an expense
-- (with its version) or a settlement; kind 'expense' cites an expense, kind 'settlement' a settlement.
-- A function because PostgreSQL re-reads a table CHECK constraint from its stored expression tree in
-- every statement that writes the table: the four clauses inline cost a posting about 60,000
-- instructions to read, the call a third of that (bench/README.md, "Database CPU per write").
CREATE OR REPLACE FUNCTION quits_entry_refs_ok(
    p_kind text, p_expense_id uuid, p_expense_version integer, p_settlement_id uuid
) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    RETURN (p_expense_id IS NULL) <> (p_settlement_id IS NULL)
        AND (p_expense_id IS NULL) = (p_expense_version IS NULL)
        AND (p_kind <> 'expense' OR p_expense_id IS NOT NULL)
        AND (p_kind <> 'settlement' OR p_settlement_id IS NOT NULL);
END
$$;
