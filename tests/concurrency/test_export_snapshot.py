"""An export is one snapshot: writes committed while it streams are not in it, and its CSV columns sum to
the balances as they were when it began (a real two-worker server, a group large enough that the
export is still streaming, held back by the slow reader, when the writes commit)."""

from __future__ import annotations

import asyncio
import csv
import io
from decimal import Decimal

import httpx

from bench.scale import bulk_load
from tests.concurrency.helpers import Live
from tests.dbutil import dsn

EXPENSES = 20_000  # a ~16 MB JSON document, ~1 MB of CSV: far more than the sockets' buffers hold


def test_writes_during_an_export_are_not_in_it(live: Live) -> None:
    api = live.api()
    a, b, c, d = (api.user(n) for n in "ABCD")
    gid = api.group(a, members=(b, c, d))
    group = {"id": gid, "members": [{"id": w.id, "token": w.token} for w in (a, b, c, d)]}
    asyncio.run(bulk_load(dsn(live.db_url), group, EXPENSES))  # type: ignore[arg-type]
    before = api.nets(a, gid)
    for rounds, fmt in enumerate(("json", "csv")):
        with httpx.Client(base_url=live.base_url, timeout=120) as reader, reader.stream(
            "GET", f"/v1/groups/{gid}/export?format={fmt}", headers=a.headers
        ) as stream:
            chunks = stream.iter_bytes(4096)
            body = bytearray(next(chunks))  # the snapshot is taken: the export is under way
            api.expense(b, gid, "99.99", b, [a, b])  # committed while the export streams
            api.settle(a, gid, a, b, "1.00")
            for chunk in chunks:
                body += chunk
        if fmt == "json":
            doc = httpx.Response(200, content=bytes(body)).json()
            assert len(doc["expenses"]) == EXPENSES and doc["settlements"] == []  # not the two writes
        else:
            header, *rows = list(csv.reader(io.StringIO(body.decode())))
            assert len(rows) == EXPENSES + 2 * rounds  # the writes before it, not those during it
            names = {w.id: api.client.get("/v1/users/me", headers=w.headers).json()["name"] for w in (a, b, c, d)}
            for user_id, net in before.items():
                column = header.index(names[user_id])
                assert sum((Decimal(r[column]) for r in rows), Decimal(0)) == Decimal(net)
        before = api.nets(a, gid)  # the next export's snapshot includes this one's writes
