"""The benchmark's bulk load (bench/scale.py) writes a ledger the service itself would accept: balances equal
to the ledger's sums, every posting balanced, every entry citing its expense, and a hash chain that walks
whole from the chain's head, so the figures measured on it are figures of a real group."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import URL

from bench.scale import bulk_load
from tests.api import Api
from tests.dbutil import assert_ledger_invariants, dsn, run_sql


def test_bulk_load_keeps_the_ledger_and_its_hash_chain_whole(api: Api, clean_db: URL) -> None:
    a, b, c, d = (api.user(n) for n in "ABCD")
    gid = api.group(a, members=(b, c, d))
    api.expense(a, gid, "3.00", b, [a, b, c])  # an entry of the chain before the load: the load appends
    group = {"id": gid, "members": [{"id": w.id} for w in (a, b, c, d)]}
    load = asyncio.run(bulk_load(dsn(clean_db), group, 500))
    assert load["check"]["expenses"] == 501 and load["check"]["drifted"] == 0 and load["check"]["chains_off"] == 0
    api.expense(a, gid, "3.00", c, [a, b, c])  # and the service appends after it
    assert_ledger_invariants(clean_db)
    assert run_sql(clean_db, "SELECT sum(entries) AS n FROM ledger_chains WHERE group_id = $1", gid)[0]["n"] == 2008
