"""Operator check: the ledger against the balances, the records it cites and its own hash chains.

    python -m app.verify            # uses DATABASE_URL, or the embedded server
    python -m app.verify --heads    # also print every chain's head (keep it where the database cannot write)

Exit status: 0 when every member's balance equals the sum of their ledger entries, every posting sums
to zero, every entry cites an existing group, user, expense or settlement and holds what that expense
version or settlement says, and every hash chain follows from its genesis to its head; 1 when drift
or tampering is found (one line per problem, naming the group, user or entry); 2 when the database
cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sqlalchemy import text
from sqlalchemy.engine import URL

from app.infra.config import get_settings
from app.infra.db import make_engine, prepare_embedded, resolve_urls, safe_url
from app.ledger.reads import Drift, find_drift

OK, DRIFT, UNREACHABLE = 0, 1, 2
_HEADS = text("SELECT group_id, slot, entries, encode(head, 'hex') AS head FROM ledger_chains ORDER BY 1, 2")


async def check(url: URL, *, heads: bool = False) -> tuple[list[Drift], list[str]]:
    engine = make_engine(url, get_settings())
    try:
        async with engine.connect() as conn:
            drift = await find_drift(conn)
            lines = [f"HEAD group={r.group_id} chain={r.slot} entries={r.entries} hash={r.head}"
                     for r in await conn.execute(_HEADS)] if heads else []  # fmt: skip
            return drift, lines
    finally:
        await engine.dispose()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.verify", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--heads", action="store_true", help="print every hash chain's head and length too")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = get_settings()
    try:
        urls = resolve_urls(settings)
        where = "the embedded server" if urls.embedded else "DATABASE_URL"
        print(f"database {safe_url(urls.service)} ({where})")
        asyncio.run(prepare_embedded(urls, settings))
        drift, heads = asyncio.run(check(urls.service, heads=args.heads))
    except (OSError, ConnectionError, TimeoutError) as exc:
        print(f"cannot reach the database: {exc}", file=sys.stderr)
        return UNREACHABLE
    except Exception as exc:  # a database that refuses us (auth, missing database) is unreachable too
        if type(exc).__module__.startswith(("asyncpg", "sqlalchemy")):
            print(f"cannot use the database: {exc}", file=sys.stderr)
            return UNREACHABLE
        raise
    for line in heads:
        print(line)
    for d in drift:
        print(f"DRIFT group={d.group_id} user={d.user_id} balance={d.balance_minor} ledger={d.ledger_minor}: {d.what}")
    print(f"{len(drift)} problem(s) found" if drift else "ok: balances, records and hash chains match the ledger")
    return DRIFT if drift else OK


if __name__ == "__main__":
    sys.exit(main())
