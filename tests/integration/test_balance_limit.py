"""Contract v2: no write may take a member's net, or the group's sum of positive nets, past 10^15
minor units (422 balance-limit-exceeded, nothing written); writes that lower them always pass."""

from __future__ import annotations

import uuid

from sqlalchemy.engine import URL

from tests.api import Api, assert_problem
from tests.dbutil import counts, run_sql

LIMIT = 10**15
LARGEST = "10000000000.00"  # 10^12 minor units: the largest expense


def _seed(db_url: URL, gid: str, payer: str, owes: str, count: int) -> None:
    """count largest expenses through the write function itself (what the API calls), in one statement."""
    run_sql(
        db_url,
        """
        SELECT quits_expense_create($1::uuid, jsonb_build_object(
            'caller', $2::text,
            'expense', jsonb_build_object(
                'id', gen_random_uuid(), 'group_id', $1::uuid::text, 'description', 'seed', 'currency', 'USD',
                'amount_minor', 1000000000000, 'group_currency', 'USD', 'group_amount_minor', 1000000000000,
                'paid_by', $2::text, 'payers', jsonb_build_array(jsonb_build_array($2::text, 1000000000000)),
                'split_type', 'equal', 'shares', jsonb_build_array(jsonb_build_array($3::text, 1000000000000)),
                'date', '2026-12-01', 'version', 1, 'created_by', $2::text, 'created_at', now(),
                'updated_by', $2::text, 'updated_at', now()),
            'entries', jsonb_build_array(jsonb_build_array($2::text, 1000000000000),
                                         jsonb_build_array($3::text, -1000000000000)),
            'members', jsonb_build_array(jsonb_build_array('paid_by', $2::text),
                                         jsonb_build_array('participants', $3::text))))
        FROM generate_series(1, $4)
        """,
        uuid.UUID(gid), payer, owes, count,
    )  # fmt: skip


def test_the_group_balance_limit(api: Api, clean_db: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    _seed(clean_db, gid, a.id, b.id, LIMIT // 10**12 - 1)
    body = {"description": "big", "amount": LARGEST, "paid_by": a.id, "split_type": "equal",
            "participants": [{"user_id": b.id}]}  # fmt: skip
    at_limit = api.client.post(f"/v1/groups/{gid}/expenses", json=body, headers=a.headers)
    assert at_limit.status_code == 201, at_limit.text  # exactly 10^15 is allowed
    assert api.nets(a, gid)[a.id] == "10000000000000.00"
    before = counts(clean_db)
    over = api.client.post(f"/v1/groups/{gid}/expenses", json={**body, "amount": "0.01"}, headers=a.headers)
    assert_problem(over, 422, "balance-limit-exceeded")
    assert counts(clean_db) == before
    # What lowers the balances still passes: a settlement, a void, an expense the other way.
    assert api.settle(b, gid, b, a, "1.00").status_code == 201
    assert api.client.delete(f"/v1/groups/{gid}/expenses/{at_limit.json()['id']}", headers=a.headers).status_code == 200
    back = {**body, "paid_by": b.id, "participants": [{"user_id": a.id}]}
    assert api.client.post(f"/v1/groups/{gid}/expenses", json=back, headers=a.headers).status_code == 201


def test_slots_past_the_limit_with_a_net_below_it(api: Api, clean_db: URL) -> None:
    """quits_post reads the exact sum only when the group's positive balance rows pass the limit: a
    member whose slots hold +2 x limit and -2 x limit (net 0) takes it there, and the exact sum lets
    the write through."""
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    run_sql(
        clean_db,
        "UPDATE balances SET net_minor = CASE slot WHEN 0 THEN $3::bigint WHEN 1 THEN -$3::bigint ELSE 0 END"
        " WHERE group_id = $1 AND user_id = $2",
        uuid.UUID(gid), uuid.UUID(a.id), 2 * LIMIT,
    )  # fmt: skip
    body = {"description": "big", "amount": LARGEST, "paid_by": a.id, "split_type": "equal",
            "participants": [{"user_id": b.id}]}  # fmt: skip
    created = api.client.post(f"/v1/groups/{gid}/expenses", json=body, headers=a.headers)
    assert created.status_code == 201, created.text
    assert api.nets(a, gid)[a.id] == LARGEST
