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

QUERIES = (EXPENSES, EXPENSE_POSTINGS, SETTLEMENTS)
