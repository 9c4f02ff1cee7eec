"""one-round-trip write functions for creating expenses and settlements

The hot writes run as one statement in autocommit: claim the Idempotency-Key (storing the
response computed by the app), check the caller is a member, lock the balance rows in ascending
user_id order, insert the row, post the balanced entries and move the balances. Row locks are
held only for the statement's own database time. Validation and split arithmetic stay in Python;
these functions re-check what can only be known under the lock.

Errors use SQLSTATE class QU (never used by PostgreSQL), mapped to problem details by app.ledger:
QU404 caller not a member, QU422 payer/participant not a member (DETAIL = field[:user_id]),
QU409 key in use, QU421 key reused with another request, QU423 settlement exceeds balance
(DETAIL = the limit in minor units), QU500 unbalanced posting (a bug, never expected).

Revision ID: b2d4f6a8c002
Revises: a1c0e5f3b001
Create Date: 2026-11-26 04:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b2d4f6a8c002"
down_revision: str | None = "a1c0e5f3b001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLAIM = """
CREATE FUNCTION quits_claim_key(
    p_user uuid, p_key text, p_fingerprint bytea, p_status smallint, p_body text, p_ttl_hours int,
    OUT claimed boolean, OUT status smallint, OUT body text
) LANGUAGE plpgsql AS $$
DECLARE
    v_fingerprint bytea;
BEGIN
    BEGIN
        INSERT INTO idempotency_keys AS k (user_id, key, fingerprint, status_code, response_body)
        VALUES (p_user, p_key, p_fingerprint, p_status, p_body)
        ON CONFLICT (user_id, key) DO UPDATE
            SET fingerprint = EXCLUDED.fingerprint, status_code = EXCLUDED.status_code,
                response_body = EXCLUDED.response_body, created_at = now()
            WHERE k.created_at < now() - make_interval(hours => p_ttl_hours)
        RETURNING true INTO claimed;
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION 'a request with this Idempotency-Key is in progress' USING ERRCODE = 'QU409';
    END;
    IF claimed THEN
        RETURN;
    END IF;
    claimed := false;
    SELECT k.fingerprint, k.status_code, k.response_body INTO v_fingerprint, status, body
    FROM idempotency_keys k WHERE k.user_id = p_user AND k.key = p_key;
    IF v_fingerprint IS DISTINCT FROM p_fingerprint THEN
        RAISE EXCEPTION 'this Idempotency-Key was used with a different request' USING ERRCODE = 'QU421';
    END IF;
END $$
"""

LOCK = """
CREATE FUNCTION quits_lock_members(p_group uuid, p_caller uuid, p_users uuid[])
RETURNS TABLE (user_id uuid, net_minor bigint) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM memberships m WHERE m.group_id = p_group AND m.user_id = p_caller;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group not found' USING ERRCODE = 'QU404';
    END IF;
    RETURN QUERY
        SELECT m.user_id, m.net_minor FROM memberships m
        WHERE m.group_id = p_group AND m.user_id = ANY(p_users)
        ORDER BY m.user_id
        FOR UPDATE;
END $$
"""

POST = """
CREATE FUNCTION quits_post(
    p_group uuid, p_users uuid[], p_amounts bigint[], p_kind text,
    p_expense_id uuid, p_expense_version int, p_settlement_id uuid
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_posting uuid := gen_random_uuid();
    v_moved int;
BEGIN
    IF (SELECT coalesce(sum(a), 1) FROM unnest(p_amounts) a) <> 0 THEN
        RAISE EXCEPTION 'posting does not sum to zero' USING ERRCODE = 'QU500';
    END IF;
    INSERT INTO ledger_entries
        (id, posting_id, group_id, user_id, amount_minor, kind, expense_id, expense_version, settlement_id)
    SELECT gen_random_uuid(), v_posting, p_group, t.u, t.a, p_kind, p_expense_id, p_expense_version,
           p_settlement_id
    FROM unnest(p_users, p_amounts) WITH ORDINALITY AS t(u, a, n)
    ORDER BY t.n;
    UPDATE memberships m SET net_minor = m.net_minor + d.delta
    FROM (SELECT t.u, sum(t.a) AS delta FROM unnest(p_users, p_amounts) AS t(u, a) GROUP BY t.u) d
    WHERE m.group_id = p_group AND m.user_id = d.u;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    IF v_moved <> (SELECT count(DISTINCT u) FROM unnest(p_users) u) THEN
        RAISE EXCEPTION 'posting touched a user without a balance row' USING ERRCODE = 'QU500';
    END IF;
END $$
"""

CREATE_EXPENSE = """
CREATE FUNCTION quits_create_expense(
    p_caller uuid, p_key text, p_fingerprint bytea, p_ttl_hours int, p_response text,
    p_id uuid, p_group uuid, p_description text, p_amount bigint, p_currency text, p_paid_by uuid,
    p_split_type text, p_shares jsonb, p_created_at timestamptz,
    p_entry_users uuid[], p_entry_amounts bigint[], p_participants uuid[],
    OUT status smallint, OUT body text, OUT replayed boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_claim record;
    v_locked uuid[];
    v_missing uuid;
BEGIN
    IF p_key IS NOT NULL THEN
        v_claim := quits_claim_key(p_caller, p_key, p_fingerprint, 201::smallint, p_response, p_ttl_hours);
        IF NOT v_claim.claimed THEN
            status := v_claim.status; body := v_claim.body; replayed := true;
            RETURN;
        END IF;
    END IF;
    SELECT array_agg(l.user_id) INTO v_locked
    FROM quits_lock_members(p_group, p_caller, array_append(p_participants, p_paid_by)) l;
    IF NOT (p_paid_by = ANY(coalesce(v_locked, '{}'))) THEN
        RAISE EXCEPTION 'paid_by must be a current member of the group' USING ERRCODE = 'QU422', DETAIL = 'paid_by';
    END IF;
    SELECT p INTO v_missing FROM unnest(p_participants) p WHERE NOT (p = ANY(v_locked)) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'participant % is not a current member', v_missing
            USING ERRCODE = 'QU422', DETAIL = 'participants:' || v_missing;
    END IF;
    INSERT INTO expenses (id, group_id, description, amount_minor, currency, paid_by, split_type, shares,
                          version, created_by, created_at, updated_at)
    VALUES (p_id, p_group, p_description, p_amount, p_currency, p_paid_by, p_split_type, p_shares,
            1, p_caller, p_created_at, p_created_at);
    PERFORM quits_post(p_group, p_entry_users, p_entry_amounts, 'expense', p_id, 1, NULL);
    status := 201; body := p_response; replayed := false;
END $$
"""

CREATE_SETTLEMENT = """
CREATE FUNCTION quits_create_settlement(
    p_caller uuid, p_key text, p_fingerprint bytea, p_ttl_hours int, p_response text,
    p_id uuid, p_group uuid, p_from uuid, p_to uuid, p_amount bigint, p_currency text, p_note text,
    p_created_at timestamptz,
    OUT status smallint, OUT body text, OUT replayed boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_claim record;
    v_from bigint;
    v_to bigint;
    v_limit bigint;
BEGIN
    IF p_key IS NOT NULL THEN
        v_claim := quits_claim_key(p_caller, p_key, p_fingerprint, 201::smallint, p_response, p_ttl_hours);
        IF NOT v_claim.claimed THEN
            status := v_claim.status; body := v_claim.body; replayed := true;
            RETURN;
        END IF;
    END IF;
    SELECT max(l.net_minor) FILTER (WHERE l.user_id = p_from), max(l.net_minor) FILTER (WHERE l.user_id = p_to)
    INTO v_from, v_to
    FROM quits_lock_members(p_group, p_caller, ARRAY[p_from, p_to]) l;
    IF v_from IS NULL THEN
        RAISE EXCEPTION 'from_user_id must be a current member of the group'
            USING ERRCODE = 'QU422', DETAIL = 'from_user_id';
    END IF;
    IF v_to IS NULL THEN
        RAISE EXCEPTION 'to_user_id must be a current member of the group'
            USING ERRCODE = 'QU422', DETAIL = 'to_user_id';
    END IF;
    -- Checked under the locks: neither net can move until this statement commits.
    v_limit := least(-v_from, v_to);
    IF p_amount > v_limit THEN
        RAISE EXCEPTION 'settlement exceeds balance' USING ERRCODE = 'QU423', DETAIL = greatest(v_limit, 0)::text;
    END IF;
    INSERT INTO settlements (id, group_id, from_user_id, to_user_id, amount_minor, currency, note,
                             created_by, created_at)
    VALUES (p_id, p_group, p_from, p_to, p_amount, p_currency, p_note, p_caller, p_created_at);
    PERFORM quits_post(p_group, ARRAY[p_from, p_to], ARRAY[p_amount, -p_amount], 'settlement', NULL, NULL, p_id);
    status := 201; body := p_response; replayed := false;
END $$
"""

FUNCTIONS = [
    ("quits_create_settlement", "uuid, text, bytea, int, text, uuid, uuid, uuid, uuid, bigint, text, text, timestamptz"),
    ("quits_create_expense", "uuid, text, bytea, int, text, uuid, uuid, text, bigint, text, uuid, text, jsonb,"
     " timestamptz, uuid[], bigint[], uuid[]"),
    ("quits_post", "uuid, uuid[], bigint[], text, uuid, int, uuid"),
    ("quits_lock_members", "uuid, uuid, uuid[]"),
    ("quits_claim_key", "uuid, text, bytea, smallint, text, int"),
]


def upgrade() -> None:
    for sql in (CLAIM, LOCK, POST, CREATE_EXPENSE, CREATE_SETTLEMENT):
        op.execute(sql)


def downgrade() -> None:
    for name, args in FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}({args})")
