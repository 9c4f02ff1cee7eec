-- The balance limit, in minor units: no write may leave a member's net, or the sum of a group's
-- positive nets, beyond it (quits_post checks it). The sum bounds every net, since nets sum to zero.
CREATE OR REPLACE FUNCTION quits_balance_limit() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 1000000000000000::bigint $$;
