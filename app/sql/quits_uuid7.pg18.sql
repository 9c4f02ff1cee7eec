-- A time-ordered (version 7) UUID: PostgreSQL 18's own (older servers: quits_uuid7.sql).
CREATE OR REPLACE FUNCTION quits_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$ SELECT uuidv7() $$;
