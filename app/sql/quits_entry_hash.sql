-- The hash of a ledger entry in its chain: SHA-256 of the previous entry's hash followed by the
-- entry's fields as text (empty for a null, microseconds since the epoch for the time), so a change
-- to any field of any entry, or a missing entry, breaks the chain from there on. Each group has one
-- chain per balance slot (ledger_entries.chain_slot), so writes to different slots never wait on
-- each other for it; quits_post appends, python -m app.verify walks the chains.
CREATE OR REPLACE FUNCTION quits_entry_hash(
    p_prev bytea, p_id uuid, p_posting uuid, p_group uuid, p_user uuid, p_amount bigint, p_kind text,
    p_expense uuid, p_version integer, p_settlement uuid, p_at timestamptz
) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT sha256(p_prev || convert_to(concat_ws('|',
        p_id::text, p_posting::text, p_group::text, p_user::text, p_amount::text, p_kind,
        coalesce(p_expense::text, ''), coalesce(p_version::text, ''), coalesce(p_settlement::text, ''),
        floor(extract(epoch FROM p_at) * 1000000)::bigint::text
    ), 'UTF8'))
$$;
