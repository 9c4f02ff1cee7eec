-- Ledger entries are immutable: the triggers ledger_entries_immutable (UPDATE, DELETE) and
-- ledger_entries_no_truncate (TRUNCATE) call this to refuse any change.
CREATE OR REPLACE FUNCTION ledger_entries_refuse_change() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are immutable: % refused', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
