-- How many balance rows (slots) each member's net is split over. An expense locks and moves one
-- randomly chosen slot per user; whatever must see a whole net locks every slot (see quits_post).
CREATE OR REPLACE FUNCTION quits_balance_slots() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 8 $$;
