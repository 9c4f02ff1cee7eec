-- QUM22 for the first of p_members ([[field, user_id], ...], in order) that is not in p_locked (the
-- users whose balance rows the caller locked, i.e. the current members); DETAIL is field:user_id.
CREATE OR REPLACE FUNCTION quits_require_members(p_locked uuid[], p_members jsonb) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_field text;
    v_user uuid;
BEGIN
    SELECT t.m->>0, (t.m->>1)::uuid INTO v_field, v_user
    FROM jsonb_array_elements(p_members) WITH ORDINALITY AS t(m, n)
    WHERE NOT ((t.m->>1)::uuid = ANY(p_locked))
    ORDER BY t.n LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% % is not a current member of the group', v_field, v_user
            USING ERRCODE = 'QUM22', DETAIL = v_field || ':' || v_user;
    END IF;
END
$$;
