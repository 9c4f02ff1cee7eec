-- Trigger groups_chains: a new group gets its ledger hash chains, one per balance slot, each at its
-- genesis hash (quits_chain_genesis) with no entries yet.
CREATE OR REPLACE FUNCTION quits_group_chains() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO ledger_chains (group_id, slot, head, entries)
    SELECT NEW.id, s, quits_chain_genesis(NEW.id, s), 0 FROM generate_series(0, quits_balance_slots() - 1) s;
    RETURN NULL;
END
$$;
