"""Operator check: recompute every balance from the ledger and report drift.

    python -m app.verify            # uses DATABASE_URL, or the embedded server
Exit status 0 when every member's balance equals the sum of their ledger entries, every posting sums
to zero and every entry cites an existing group, user, expense or settlement; 1 (with one line per
problem) otherwise.
"""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy.engine import URL

from app.infra.config import get_settings
from app.infra.db import make_engine, resolve_url, safe_url
from app.ledger.reads import Drift, find_drift


async def check(url: URL) -> list[Drift]:
    engine = make_engine(url, get_settings())
    try:
        async with engine.connect() as conn:
            return await find_drift(conn)
    finally:
        await engine.dispose()


def main() -> int:
    url, embedded = resolve_url(get_settings())
    print(f"database {safe_url(url)} ({'the embedded server' if embedded else 'DATABASE_URL'})")
    drift = asyncio.run(check(url))
    for d in drift:
        print(f"DRIFT group={d.group_id} user={d.user_id} balance={d.balance_minor} ledger={d.ledger_minor}: {d.what}")
    print(f"{len(drift)} problem(s) found" if drift else "ok: every balance equals its ledger entries")
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
