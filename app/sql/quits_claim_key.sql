-- Claim an Idempotency-Key for p_caller, storing the response the app rendered for this request.
-- p_claim: {"key", "fingerprint" (hex), "status", "response", "ttl_hours"}.
-- claimed: this request is the first (or the key had expired): go on and write.
-- Otherwise the stored status and body are returned for a replay; another request under the key
-- raises QUK22; a claim still held by an uncommitted request past lock_timeout raises QUK09.
-- The claim is part of the caller's statement: if the write fails, the key stays unused.
CREATE OR REPLACE FUNCTION quits_claim_key(
    p_caller uuid, p_claim jsonb, OUT claimed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_fingerprint bytea := decode(p_claim->>'fingerprint', 'hex');
    v_stored bytea;
BEGIN
    BEGIN
        INSERT INTO idempotency_keys AS k (user_id, key, fingerprint, status_code, response_body)
        VALUES (p_caller, p_claim->>'key', v_fingerprint, (p_claim->>'status')::smallint, p_claim->>'response')
        ON CONFLICT (user_id, key) DO UPDATE
            SET fingerprint = EXCLUDED.fingerprint, status_code = EXCLUDED.status_code,
                response_body = EXCLUDED.response_body, created_at = now()
            WHERE k.created_at < now() - make_interval(hours => (p_claim->>'ttl_hours')::int)
        RETURNING true INTO claimed;
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION 'a request with this Idempotency-Key is in progress' USING ERRCODE = 'QUK09';
    END;
    IF claimed THEN
        RETURN;
    END IF;
    claimed := false;
    SELECT k.fingerprint, k.status_code, k.response_body INTO v_stored, status, body
    FROM idempotency_keys k WHERE k.user_id = p_caller AND k.key = p_claim->>'key';
    IF v_stored IS DISTINCT FROM v_fingerprint THEN
        RAISE EXCEPTION 'this Idempotency-Key was used with a different request' USING ERRCODE = 'QUK22';
    END IF;
END
$$;
