-- Command: a request that changes nothing (an edit equal to the current version, a second void)
-- still claims its Idempotency-Key, so that a retry replays it and another request under the key is
-- refused. p_cmd: {"caller": uuid, "claim"?: {see quits_claim_key}}. Writes nothing else.
CREATE OR REPLACE FUNCTION quits_key_only(
    p_group uuid, p_cmd jsonb, OUT replayed boolean, OUT status smallint, OUT body text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_claim record;
BEGIN
    replayed := false;
    IF p_cmd ? 'claim' THEN
        v_claim := quits_claim_key((p_cmd->>'caller')::uuid, p_cmd->'claim');
        IF NOT v_claim.claimed THEN
            replayed := true; status := v_claim.status; body := v_claim.body;
        END IF;
    END IF;
END
$$;
