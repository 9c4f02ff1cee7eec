"""No write touches two groups, so each can be a colocated distributed function under Citus
(docs/scaling.md, section 4): checked by running them.

A probe (a trigger on every group-scoped table, and on idempotency_keys to see the key-only commands)
records, for every row written, the transaction, the row's group and the statement the client sent. A
workload through the API then makes every kind of write in two groups: every command of
app.ledger.commands (every write function in app/sql, called as `quits_<command>(group_id, cmd)`), the
engine's own writes (groups, members, guests, invites and their claim), and the recurring scheduler's
occurrences, and an import (a third group). No transaction may write rows of two groups, except the scheduler's lease claim, which
writes only `claimed_until` (docs/scaling.md names it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from app.ledger.commands import Command
from tests.api import Api, Who
from tests.dbutil import dsn, run_sql
from tests.recurring_helpers import rule_body, run_pass
from tests.schema.test_citus_ready import group_scoped

PROBE = """
CREATE SCHEMA citus_probe;
CREATE TABLE citus_probe.writes (txid bigint, group_id uuid, tbl text, lease boolean, query text);
CREATE FUNCTION citus_probe.record() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog AS $$
DECLARE
    v_new jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    v_old jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    v_lease boolean := TG_TABLE_NAME = 'recurring_rules' AND TG_OP = 'UPDATE'
        AND v_new - 'claimed_until' = v_old - 'claimed_until';
BEGIN
    INSERT INTO citus_probe.writes
    SELECT txid_current(), (g.doc->>TG_ARGV[0])::uuid, TG_TABLE_NAME, v_lease, current_query()
    FROM (VALUES (v_new), (v_old)) g(doc) WHERE g.doc IS NOT NULL;
    RETURN NULL;
END $$;
"""


@pytest.fixture
def probe(api: Api, db_url: URL) -> Iterator[URL]:
    tables = {**group_scoped(db_url), "idempotency_keys": "no group"}
    triggers = [
        f"CREATE TRIGGER citus_probe AFTER INSERT OR UPDATE OR DELETE ON {table}"
        f" FOR EACH ROW EXECUTE FUNCTION citus_probe.record('{column}')"
        for table, column in tables.items()
    ]
    _execute(db_url, "DROP SCHEMA IF EXISTS citus_probe CASCADE;" + PROBE + ";".join(triggers))
    try:
        yield db_url
    finally:
        _execute(db_url, "DROP SCHEMA citus_probe CASCADE")  # and the triggers, which depend on its function


def _execute(url: URL, sql: str) -> None:
    """Statements (several, as one simple query) on a fresh connection as the superuser."""

    async def go() -> None:
        conn = await asyncpg.connect(dsn(url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def _ok(r: Any, status: int = 201) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def _expense(c: TestClient, who: Who, gid: str, users: list[Who], *, key: str) -> dict[str, Any]:
    body = {"description": "x", "amount": "30.00", "paid_by": users[0].id, "split_type": "equal",
            "participants": [{"user_id": u.id} for u in users]}  # fmt: skip
    r = c.post(f"/v1/groups/{gid}/expenses", json=body, headers={**who.headers, "Idempotency-Key": key})
    expense: dict[str, Any] = _ok(r)
    path = f"/v1/groups/{gid}/expenses/{expense['id']}"
    edited = {**body, "amount": "45.00"}
    _ok(c.put(path, json=edited, headers={**who.headers, "Idempotency-Key": key + "-edit"}), 200)
    _ok(c.put(path, json=edited, headers={**who.headers, "Idempotency-Key": key + "-same"}), 200)  # key only
    return expense


def _group_writes(c: TestClient, api: Api, *, a: Who, b: Who, key: str) -> str:
    """Every write of one group: members, a guest and the claim of their invite, expenses (create, edit,
    an edit that changes nothing, void twice), settlements (create, void twice), a member removed,
    recurring rules (create, edit, skip, stop)."""
    gid = api.group(a, members=(b,))
    guest = _ok(c.post(f"/v1/groups/{gid}/members", json={"name": "Guest"}, headers=a.headers))["members"]
    guest_id = next(m["user_id"] for m in guest if m["guest"])
    code = _ok(c.post(f"/v1/groups/{gid}/members/{guest_id}/invite", headers=a.headers))["invite_code"]
    _ok(c.post("/v1/users/claim", json={"invite_code": code, "email": f"{key}@example.com"}))
    spare = _expense(c, a, gid, [a, b], key=key + "-spare")
    path = f"/v1/groups/{gid}/expenses/{spare['id']}"
    for attempt in ("void", "again"):
        _ok(c.delete(path, headers={**a.headers, "Idempotency-Key": f"{key}-{attempt}"}), 200)
    _expense(c, a, gid, [a, b], key=key)
    settled = _ok(api.settle(a, gid, b, a, "5.00"))
    path = f"/v1/groups/{gid}/settlements/{settled['id']}"
    for attempt in ("void", "again"):
        _ok(c.delete(path, headers={**a.headers, "Idempotency-Key": f"{key}-settle-{attempt}"}), 200)
    other = api.user("Leaves")
    _ok(c.post(f"/v1/groups/{gid}/members", json={"user_id": other.id}, headers=a.headers))
    _ok(c.delete(f"/v1/groups/{gid}/members/{other.id}", headers=a.headers), 204)
    rules = f"/v1/groups/{gid}/recurring"
    for n in range(2):
        rule = _ok(c.post(rules, json=rule_body(a, [a, b]), headers=a.headers))
        _ok(c.put(f"{rules}/{rule['id']}", json=rule_body(a, [a, b], amount="31.00"), headers=a.headers), 200)
        _ok(c.post(f"{rules}/{rule['id']}/skip", headers=a.headers), 200)
        if n:  # the other stays active for the scheduler
            _ok(c.delete(f"{rules}/{rule['id']}", headers=a.headers), 200)
    return gid


def test_no_transaction_writes_two_groups(api: Api, client: TestClient, probe: URL) -> None:
    a, b = api.user("A"), api.user("B")
    groups = {_group_writes(client, api, a=a, b=b, key=f"k{n}-{uuid.uuid4().hex[:8]}") for n in range(2)}
    assert run_pass(client, dt.date(2030, 6, 15)) > 0  # occurrences of both groups' rules
    exported = client.get(f"/v1/groups/{min(groups)}/export", headers=a.headers).content
    imported = client.post(
        "/v1/groups/import", content=exported, headers={**b.headers, "Content-Type": "application/json"}
    )  # a third group: quits_group_import, posting through quits_post_import
    groups.add(_ok(imported)["id"])

    writes = run_sql(probe, "SELECT txid, group_id, tbl, lease, query FROM citus_probe.writes")
    by_tx: dict[int, set[uuid.UUID]] = defaultdict(set)
    for w in writes:
        if w["group_id"] is not None and not w["lease"]:
            by_tx[w["txid"]].add(w["group_id"])
    crossing = {tx: gs for tx, gs in by_tx.items() if len(gs) > 1}
    assert crossing == {}, [(w["tbl"], w["query"][:200]) for w in writes if w["txid"] in crossing]

    assert {str(g) for gs in by_tx.values() for g in gs} == groups
    called = {name for w in writes for name in re.findall(r"\b(quits_[a-z_]+)\(", w["query"])}
    assert {c.value for c in Command} <= called, "the workload must run every write command"
    advanced = {w["tbl"] for w in writes if "quits_expense_create" in w["query"] and not w["lease"]}
    assert "recurring_rules" in advanced  # occurrences advanced their rule (quits_recurring_advance)
    leases = {w["txid"] for w in writes if w["lease"]}
    assert leases, "the scheduler claimed rules (the one write allowed to span groups: a lease)"
