-- The hash a chain starts from: its group and slot, so no chain can be passed off as another's.
CREATE OR REPLACE FUNCTION quits_chain_genesis(p_group uuid, p_slot integer) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT sha256(convert_to('quits:' || p_group::text || ':' || p_slot::text, 'UTF8')) $$;
