-- Rows of an append-only table (expense_versions, activity) are never updated or deleted: the
-- triggers <table>_immutable and <table>_no_truncate call this to refuse it.
CREATE OR REPLACE FUNCTION quits_immutable() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
