-- The only writer of ledger entries and balances (but for an import's new group: quits_post_import).
-- Inserts one balanced posting, p_entries as
-- [[user_id, amount_minor], ...] in order, appended to the hash chain of (group, p_slot), and moves
-- slot p_slot of each user's balance. The caller has already locked those balance rows
-- (quits_lock_slot or quits_lock_members), after inserting or locking the expense or settlement the
-- entries cite; the chain's head row is locked after them (every writer takes it last).
-- QUL00: a broken invariant (a bug). QUB22 (DETAIL: the limit) when the posting raises the group's
-- sum of positive nets past quits_balance_limit(): read from the committed balances, with this
-- posting's own rows locked. The exact sum adds up every member's slots; it is read only when the
-- sum of the positive parts of the group's balance rows passes the limit, since that sum bounds it
-- (max(sum of a member's slots, 0) <= sum of max(slot, 0)): while it is within the limit, no
-- posting can be refused.
CREATE OR REPLACE FUNCTION quits_post(
    p_group uuid, p_entries jsonb, p_kind text,
    p_expense_id uuid, p_expense_version integer, p_settlement_id uuid, p_slot integer
) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_posting uuid := gen_random_uuid();
    v_at timestamptz := now();
    v_users uuid[];
    v_amounts bigint[];
    v_sum bigint;
    v_distinct integer;
    v_ids uuid[] := '{}';
    v_hashes bytea[] := '{}';
    v_hash bytea;
    v_moved integer;
    v_bound numeric;
    v_positive numeric;
    v_raised numeric;
BEGIN
    SELECT array_agg((t.e->>0)::uuid ORDER BY t.n), array_agg((t.e->>1)::bigint ORDER BY t.n),
           sum((t.e->>1)::bigint), count(DISTINCT t.e->>0)
    INTO v_users, v_amounts, v_sum, v_distinct
    FROM jsonb_array_elements(p_entries) WITH ORDINALITY AS t(e, n);
    IF coalesce(v_sum, 1) <> 0 THEN
        RAISE EXCEPTION 'posting does not sum to zero: %', p_entries USING ERRCODE = 'QUL00';
    END IF;
    SELECT c.head INTO v_hash FROM ledger_chains c WHERE c.group_id = p_group AND c.slot = p_slot FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group % has no chain %', p_group, p_slot USING ERRCODE = 'QUL00';
    END IF;
    FOR i IN 1 .. cardinality(v_users) LOOP
        v_ids := v_ids || quits_uuid7();
        v_hash := quits_entry_hash(v_hash, v_ids[i], v_posting, p_group, v_users[i], v_amounts[i], p_kind,
                                   p_expense_id, p_expense_version, p_settlement_id, v_at);
        v_hashes := v_hashes || v_hash;
    END LOOP;
    INSERT INTO ledger_entries
        (id, posting_id, group_id, user_id, amount_minor, kind, expense_id, expense_version, settlement_id,
         created_at, chain_slot, chain_hash)
    SELECT t.id, v_posting, p_group, t.u, t.a, p_kind, p_expense_id, p_expense_version, p_settlement_id,
           v_at, p_slot, t.h
    FROM unnest(v_ids, v_users, v_amounts, v_hashes) WITH ORDINALITY AS t(id, u, a, h, n)
    ORDER BY t.n;
    UPDATE ledger_chains SET head = v_hash, entries = entries + cardinality(v_users)
    WHERE group_id = p_group AND slot = p_slot;
    UPDATE balances b SET net_minor = b.net_minor + d.delta
    FROM (SELECT t.u, sum(t.a) AS delta FROM unnest(v_users, v_amounts) AS t(u, a) GROUP BY t.u) d
    WHERE b.group_id = p_group AND b.user_id = d.u AND b.slot = p_slot;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    IF v_moved <> v_distinct THEN
        RAISE EXCEPTION 'posting touched a user without a balance row' USING ERRCODE = 'QUL00';
    END IF;
    SELECT sum(greatest(b.net_minor, 0)) INTO v_bound FROM balances b WHERE b.group_id = p_group;
    IF v_bound > quits_balance_limit() THEN
        SELECT sum(greatest(n.net, 0)),
               sum(greatest(n.net, 0) - greatest(n.net - coalesce(d.delta, 0), 0))
        INTO v_positive, v_raised
        FROM (SELECT b.user_id, sum(b.net_minor) AS net FROM balances b WHERE b.group_id = p_group GROUP BY b.user_id) n
        LEFT JOIN (SELECT t.u, sum(t.a) AS delta FROM unnest(v_users, v_amounts) AS t(u, a) GROUP BY t.u) d
            ON d.u = n.user_id;
        IF v_positive > quits_balance_limit() AND v_raised > 0 THEN
            RAISE EXCEPTION 'the write would take the group''s balances past the limit'
                USING ERRCODE = 'QUB22', DETAIL = quits_balance_limit()::text;
        END IF;
    END IF;
END
$$;
