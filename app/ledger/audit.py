"""The ledger against the records it cites: every expense version and settlement posted exactly what
it says, and every edit, void and settlement void posted the exact negation. Reads only.

Each query returns (group_id, user_id, expected_minor, posted_minor, what) for every mismatch, so
`python -m app.verify` can name it; an empty result is a ledger that matches its records.
"""

from __future__ import annotations

from sqlalchemy import text

# What each expense's versions should have posted: the current version +paid/-owed per user
# (from payers and shares), every earlier version, and a voided current one, zero in all
# (their postings reversed). Compared per (expense, version, user) with what was posted.
EXPENSES = text(
    """
    WITH current_parts AS (
        SELECT e.group_id, e.id, e.version, (p->>0)::uuid AS user_id, (p->>1)::bigint AS amount
        FROM expenses e, jsonb_array_elements(e.payers) p WHERE e.voided_at IS NULL
        UNION ALL
        SELECT e.group_id, e.id, e.version, (s->>0)::uuid, -(s->>1)::bigint
        FROM expenses e, jsonb_array_elements(e.shares) s WHERE e.voided_at IS NULL
    ),
    expected AS (
        SELECT group_id, id, version, user_id, sum(amount) AS amount FROM current_parts GROUP BY 1, 2, 3, 4
    ),
    posted AS (
        SELECT l.group_id, l.expense_id AS id, l.expense_version AS version, l.user_id, sum(l.amount_minor) AS amount
        FROM ledger_entries l WHERE l.expense_id IS NOT NULL GROUP BY 1, 2, 3, 4
    )
    SELECT coalesce(x.group_id, p.group_id) AS group_id, coalesce(x.user_id, p.user_id) AS user_id,
           coalesce(x.amount, 0) AS expected_minor, coalesce(p.amount, 0) AS posted_minor,
           'expense ' || coalesce(x.id, p.id) || ' version ' || coalesce(x.version, p.version)
               || ': the ledger does not hold what it says' AS what
    FROM expected x FULL JOIN posted p ON p.id = x.id AND p.version = x.version AND p.user_id = x.user_id
    WHERE coalesce(x.amount, 0) <> coalesce(p.amount, 0)
    """
)

# Each version of an expense is posted once (kind 'expense') and reversed at most once; a version
# reversed must be an earlier one, or the current one of a voided expense.
EXPENSE_POSTINGS = text(
    """
    SELECT e.group_id, NULL::uuid AS user_id, 0 AS expected_minor, 0 AS posted_minor,
           'expense ' || e.id || ' version ' || v.version || ': ' || v.postings || ' posting(s), '
               || v.reversals || ' reversal(s)' AS what
    FROM expenses e
    JOIN LATERAL (
        SELECT l.expense_version AS version,
               count(DISTINCT l.posting_id) FILTER (WHERE l.kind = 'expense') AS postings,
               count(DISTINCT l.posting_id) FILTER (WHERE l.kind = 'reversal') AS reversals
        FROM ledger_entries l WHERE l.expense_id = e.id GROUP BY l.expense_version
    ) v ON true
    WHERE v.postings <> 1
       OR v.reversals <> CASE WHEN v.version < e.version OR e.voided_at IS NOT NULL THEN 1 ELSE 0 END
       OR v.version > e.version
    """
)

# A settlement posts +amount to the payer and -amount to the payee; a voided one nets to zero.
SETTLEMENTS = text(
    """
    WITH expected AS (
        SELECT group_id, id, from_user_id AS user_id, amount_minor AS amount FROM settlements WHERE voided_at IS NULL
        UNION ALL
        SELECT group_id, id, to_user_id, -amount_minor FROM settlements WHERE voided_at IS NULL
    ),
    posted AS (
        SELECT group_id, settlement_id AS id, user_id, sum(amount_minor) AS amount
        FROM ledger_entries WHERE settlement_id IS NOT NULL GROUP BY 1, 2, 3
    )
    SELECT coalesce(x.group_id, p.group_id) AS group_id, coalesce(x.user_id, p.user_id) AS user_id,
           coalesce(x.amount, 0) AS expected_minor, coalesce(p.amount, 0) AS posted_minor,
           'settlement ' || coalesce(x.id, p.id) || ': the ledger does not hold what it says' AS what
    FROM expected x FULL JOIN posted p ON p.id = x.id AND p.user_id = x.user_id
    WHERE coalesce(x.amount, 0) <> coalesce(p.amount, 0)
    """
)

# Every entry's hash follows from the previous entry of its chain and its own fields; the first
# entry of a chain follows from the chain's genesis. The first entry that does not follow is named:
# an altered entry, or the one after a removed entry. (An attacker who rewrites every later hash too
# is not caught by this alone: keep `python -m app.verify --heads` output somewhere the database's
# owner cannot write, and compare.)
CHAIN_LINKS = text(
    """
    SELECT group_id, user_id, 0 AS expected_minor, amount_minor AS posted_minor,
           'ledger entry ' || id || ' (seq ' || seq || ', chain ' || chain_slot
               || '): its hash does not follow from the chain' AS what
    FROM (
        SELECT l.*, quits_entry_hash(
                   coalesce(lag(l.chain_hash) OVER w, quits_chain_genesis(l.group_id, l.chain_slot)),
                   l.id, l.posting_id, l.group_id, l.user_id, l.amount_minor, l.kind,
                   l.expense_id, l.expense_version, l.settlement_id, l.created_at) AS expected
        FROM ledger_entries l
        WINDOW w AS (PARTITION BY l.group_id, l.chain_slot ORDER BY l.seq)
    ) x
    WHERE x.expected <> x.chain_hash
    """
)

# Each chain's head row names its last entry's hash and its length: entries removed at the end, or a
# head moved, show here.
CHAIN_HEADS = text(
    """
    SELECT c.group_id, NULL::uuid AS user_id, c.entries AS expected_minor, coalesce(l.n, 0) AS posted_minor,
           'ledger chain ' || c.slot || ' of group ' || c.group_id || ': its head does not match its entries' AS what
    FROM ledger_chains c
    LEFT JOIN LATERAL (
        SELECT count(*) AS n, (array_agg(e.chain_hash ORDER BY e.seq DESC))[1] AS last
        FROM ledger_entries e WHERE e.group_id = c.group_id AND e.chain_slot = c.slot
    ) l ON true
    WHERE c.entries <> coalesce(l.n, 0)
       OR c.head <> coalesce(l.last, quits_chain_genesis(c.group_id, c.slot))
    """
)

QUERIES = (EXPENSES, EXPENSE_POSTINGS, SETTLEMENTS, CHAIN_LINKS, CHAIN_HEADS)
