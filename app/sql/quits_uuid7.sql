-- A time-ordered (version 7) UUID on servers before PostgreSQL 18: a v4 UUID whose first 48 bits
-- are Unix milliseconds and whose version nibble is 7 (PostgreSQL 18: quits_uuid7.pg18.sql).
CREATE OR REPLACE FUNCTION quits_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$ SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid $$;
