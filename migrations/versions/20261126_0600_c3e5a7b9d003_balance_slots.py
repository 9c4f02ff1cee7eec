"""balance slots: each member's net is split over SLOTS rows so writes to one group run side by side

A member's net is the sum of their rows in `balances` (the view `member_balances` gives the sums).
An expense locks and moves one slot per user, the same randomly chosen slot for every user of the
posting, so concurrent expenses in one busy group mostly touch different rows and commit in
parallel. Whatever must see a member's whole net (a settlement's limit, an edit or void, removing a
member) locks all of that member's slots. Every writer locks in ascending (user_id, slot) order, so
the two kinds of lock set cannot deadlock: an expense's set {(u1, s), (u2, s), ...} is ordered the
same way as a settlement's {(u1, 0..SLOTS-1), (u2, 0..SLOTS-1)}.

The slot rows of a membership are created by a trigger when the membership is inserted and removed
with it (ON DELETE CASCADE). Upgrading moves each memberships.net_minor into slot 0; downgrading sums
the slots back into memberships.net_minor.

Revision ID: c3e5a7b9d003
Revises: b2d4f6a8c002
Create Date: 2026-11-26 06:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c3e5a7b9d003"
down_revision: str | None = "b2d4f6a8c002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = 8  # rows per member; an expense picks one at random (see quits_create_expense)

TABLE = f"""
CREATE TABLE balances (
    group_id uuid NOT NULL,
    user_id uuid NOT NULL,
    slot smallint NOT NULL,
    net_minor bigint NOT NULL DEFAULT 0,
    CONSTRAINT pk_balances PRIMARY KEY (group_id, user_id, slot),
    CONSTRAINT ck_balances_slot CHECK (slot >= 0 AND slot < {SLOTS}),
    CONSTRAINT fk_balances_membership FOREIGN KEY (group_id, user_id)
        REFERENCES memberships (group_id, user_id) ON DELETE CASCADE
) WITH (fillfactor = 50)
"""

SLOT_TRIGGER = f"""
CREATE FUNCTION quits_membership_slots() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO balances (group_id, user_id, slot)
    SELECT NEW.group_id, NEW.user_id, s FROM generate_series(0, {SLOTS - 1}) s;
    RETURN NULL;
END $$
"""
SLOT_TRIGGER_ON = """
CREATE TRIGGER memberships_slots AFTER INSERT ON memberships
    FOR EACH ROW EXECUTE FUNCTION quits_membership_slots()
"""

VIEW = """
CREATE VIEW member_balances AS
    SELECT group_id, user_id, sum(net_minor)::bigint AS net_minor FROM balances GROUP BY group_id, user_id
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
        SELECT l.user_id, sum(l.net_minor)::bigint FROM (
            SELECT b.user_id, b.net_minor FROM balances b
            WHERE b.group_id = p_group AND b.user_id = ANY(p_users)
            ORDER BY b.user_id, b.slot
            FOR UPDATE
        ) l
        GROUP BY l.user_id ORDER BY l.user_id;
END $$
"""

LOCK_SLOT = """
CREATE FUNCTION quits_lock_slot(p_group uuid, p_caller uuid, p_users uuid[], p_slot int)
RETURNS uuid[] LANGUAGE plpgsql AS $$
DECLARE
    v_locked uuid[];
BEGIN
    PERFORM 1 FROM memberships m WHERE m.group_id = p_group AND m.user_id = p_caller;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'group not found' USING ERRCODE = 'QU404';
    END IF;
    SELECT array_agg(l.user_id) INTO v_locked FROM (
        SELECT b.user_id FROM balances b
        WHERE b.group_id = p_group AND b.slot = p_slot AND b.user_id = ANY(p_users)
        ORDER BY b.user_id
        FOR UPDATE
    ) l;
    RETURN coalesce(v_locked, '{}');
END $$
"""

POST = """
CREATE FUNCTION quits_post(
    p_group uuid, p_users uuid[], p_amounts bigint[], p_kind text,
    p_expense_id uuid, p_expense_version int, p_settlement_id uuid, p_slot int
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
    UPDATE balances b SET net_minor = b.net_minor + d.delta
    FROM (SELECT t.u, sum(t.a) AS delta FROM unnest(p_users, p_amounts) AS t(u, a) GROUP BY t.u) d
    WHERE b.group_id = p_group AND b.user_id = d.u AND b.slot = p_slot;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    IF v_moved <> (SELECT count(DISTINCT u) FROM unnest(p_users) u) THEN
        RAISE EXCEPTION 'posting touched a user without a balance row' USING ERRCODE = 'QU500';
    END IF;
END $$
"""

CREATE_EXPENSE = f"""
CREATE FUNCTION quits_create_expense(
    p_caller uuid, p_key text, p_fingerprint bytea, p_ttl_hours int, p_response text,
    p_id uuid, p_group uuid, p_description text, p_amount bigint, p_currency text, p_paid_by uuid,
    p_split_type text, p_shares jsonb, p_created_at timestamptz,
    p_entry_users uuid[], p_entry_amounts bigint[], p_participants uuid[],
    OUT status smallint, OUT body text, OUT replayed boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_claim record;
    v_slot int := floor(random() * {SLOTS})::int;
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
    v_locked := quits_lock_slot(p_group, p_caller, array_append(p_participants, p_paid_by), v_slot);
    IF NOT (p_paid_by = ANY(v_locked)) THEN
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
    PERFORM quits_post(p_group, p_entry_users, p_entry_amounts, 'expense', p_id, 1, NULL, v_slot);
    status := 201; body := p_response; replayed := false;
END $$
"""

# Frozen copies of what migration b2d4f6a8c002 created, restored on downgrade, and of its settlement
# function with the post call given a slot (settlements post to slot 0: all of both members' slots are
# locked by then). A migration carries its own SQL: it never loads or patches another's.
SETTLEMENT = """
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
    PERFORM quits_post(p_group, ARRAY[p_from, p_to], ARRAY[p_amount, -p_amount], 'settlement', NULL, NULL, p_id, 0);
    status := 201; body := p_response; replayed := false;
END $$
"""

PREVIOUS_LOCK = """
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

PREVIOUS_POST = """
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

PREVIOUS_CREATE_EXPENSE = """
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

PREVIOUS_CREATE_SETTLEMENT = """
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

PREVIOUS_FUNCTIONS = [('quits_create_settlement', 'uuid, text, bytea, int, text, uuid, uuid, uuid, uuid, bigint, text, text, timestamptz'), ('quits_create_expense', 'uuid, text, bytea, int, text, uuid, uuid, text, bigint, text, uuid, text, jsonb, timestamptz, uuid[], bigint[], uuid[]'), ('quits_post', 'uuid, uuid[], bigint[], text, uuid, int, uuid'), ('quits_lock_members', 'uuid, uuid, uuid[]')]

NEW_FUNCTIONS = [('quits_create_settlement', 'uuid, text, bytea, int, text, uuid, uuid, uuid, uuid, bigint, text, text, timestamptz'), ('quits_create_expense', 'uuid, text, bytea, int, text, uuid, uuid, text, bigint, text, uuid, text, jsonb, timestamptz, uuid[], bigint[], uuid[]'), ('quits_post', 'uuid, uuid[], bigint[], text, uuid, int, uuid, int'), ('quits_lock_slot', 'uuid, uuid, uuid[], int'), ('quits_lock_members', 'uuid, uuid, uuid[]')]


def _drop(functions: Sequence[tuple[str, str]]) -> None:
    for name, args in functions:
        op.execute(f"DROP FUNCTION {name}({args})")


def upgrade() -> None:
    _drop(PREVIOUS_FUNCTIONS)
    op.execute(TABLE)
    op.execute(
        f"INSERT INTO balances (group_id, user_id, slot, net_minor)"
        f" SELECT m.group_id, m.user_id, s, CASE WHEN s = 0 THEN m.net_minor ELSE 0 END"
        f" FROM memberships m CROSS JOIN generate_series(0, {SLOTS - 1}) s"
    )
    op.execute("ALTER TABLE memberships DROP COLUMN net_minor")
    op.execute(SLOT_TRIGGER)
    op.execute(SLOT_TRIGGER_ON)
    op.execute(VIEW)
    for sql in (LOCK, LOCK_SLOT, POST, CREATE_EXPENSE, SETTLEMENT):
        op.execute(sql)


def downgrade() -> None:
    _drop(NEW_FUNCTIONS)
    op.execute("DROP VIEW member_balances")
    op.execute("DROP TRIGGER memberships_slots ON memberships")
    op.execute("DROP FUNCTION quits_membership_slots()")
    op.execute("ALTER TABLE memberships ADD COLUMN net_minor bigint NOT NULL DEFAULT 0")
    op.execute(
        "UPDATE memberships m SET net_minor = b.net FROM"
        " (SELECT group_id, user_id, sum(net_minor) AS net FROM balances GROUP BY 1, 2) b"
        " WHERE m.group_id = b.group_id AND m.user_id = b.user_id"
    )
    op.execute("DROP TABLE balances")
    for sql in (PREVIOUS_LOCK, PREVIOUS_POST, PREVIOUS_CREATE_EXPENSE, PREVIOUS_CREATE_SETTLEMENT):
        op.execute(sql)
