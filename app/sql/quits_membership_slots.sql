-- Trigger memberships_slots: a new membership gets its zero balance slots (removed with it by cascade).
CREATE OR REPLACE FUNCTION quits_membership_slots() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO balances (group_id, user_id, slot)
    SELECT NEW.group_id, NEW.user_id, s FROM generate_series(0, quits_balance_slots() - 1) s;
    RETURN NULL;
END
$$;
