"""A group's export, streamed: the quits JSON document, or a spreadsheet's CSV. Constant memory.

Both read one snapshot (a REPEATABLE READ, READ ONLY transaction on one pooled connection) in keyset
batches of `export_batch_rows` records, oldest first by (created_at, id), and render each record with
its resource's own renderer, so the export says exactly what the API says.

- JSON (`format` "quits", `version` 1): `group`, `members` (as GET .../members), `expenses` (every
  expense, voided ones too, each with `versions`: its superseded versions as GET .../versions gives
  them), `settlements` (voided ones too), and last `former_members`: the people the records cite who
  are no longer members (user_id, name, guest; email withheld). POST /v1/groups/import reads it back.
- CSV: Date, Description, Category, Cost, Currency, then one column per person (current members by
  user_id, then former members the ledger cites), headed by the name (equal names get " #2", " #3"
  ...); one row per expense and settlement that is not voided, interleaved by time; each person's cell
  is the row's signed effect on their net, in the group's currency, so a member's column sums to their
  net. Cost is the row's total in the group's currency. A settlement's Category is "Payment". Text that
  a spreadsheet would run as a formula (starting with = + - @ tab or CR) is prefixed with '.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.money import currency_decimals, format_amount
from app.core.records import rfc3339
from app.domain import groups, settlements
from app.domain.expenses import ExpenseRecord
from app.domain.settlements import SettlementRecord
from app.infra.config import Settings

FORMAT, VERSION = "quits", 1
_START = (dt.datetime(1, 1, 1, tzinfo=dt.UTC), uuid.UUID(int=0))
_EXPENSES = """
SELECT id, group_id, description, currency, amount_minor, exchange_rate, group_currency, group_amount_minor,
       payers::text, split_type, shares::text, date, category, notes, version, created_by, created_at, updated_by,
       updated_at, voided_at, recurring_id, occurrence_date
FROM expenses WHERE group_id = $1 AND (created_at, id) > ($2, $3) {voided}
ORDER BY created_at, id LIMIT $4
"""
_SETTLEMENTS = """
SELECT id, group_id, from_user_id, to_user_id, amount_minor, currency, note, created_by, created_at, voided_at
FROM settlements WHERE group_id = $1 AND (created_at, id) > ($2, $3) {voided}
ORDER BY created_at, id LIMIT $4
"""
_VERSIONS = """
SELECT expense_id, doc::text FROM expense_versions WHERE group_id = $1 AND expense_id = ANY($2::uuid[])
ORDER BY expense_id, version
"""
_MEMBERS = """
SELECT u.id AS user_id, u.name, u.email, u.guest FROM memberships m JOIN users u ON u.id = m.user_id
WHERE m.group_id = $1 ORDER BY u.id
"""
_CITED = "SELECT DISTINCT user_id FROM ledger_entries WHERE group_id = $1"
_PEOPLE = "SELECT id AS user_id, name, NULL::text AS email, guest FROM users WHERE id = ANY($1::uuid[]) ORDER BY id"
_GROUP = "SELECT id, name, currency, created_by, created_at FROM groups WHERE id = $1"


def record_of(r: Sequence[Any]) -> ExpenseRecord:
    """A row of _EXPENSES as the record the API renders (the export's fast renderers must agree with it)."""
    def pairs(text: str) -> tuple[tuple[uuid.UUID, int], ...]:
        return tuple((uuid.UUID(u), a) for u, a in orjson.loads(text))

    return ExpenseRecord(
        id=r[0], group_id=r[1], description=r[2], currency=r[3], amount_minor=r[4], exchange_rate=r[5],
        group_currency=r[6], group_amount_minor=r[7], payers=pairs(r[8]), split_type=r[9], owed=pairs(r[10]),
        date=r[11], category=r[12], notes=r[13], version=r[14], created_by=r[15], created_at=r[16], updated_by=r[17],
        updated_at=r[18], voided_at=r[19], recurring_id=r[20], occurrence_date=r[21],
    )  # fmt: skip


def expense_json(r: Sequence[Any], versions: list[Any], cited: set[str]) -> bytes:
    """expenses.render(record_of(r)) plus its versions, encoded: the same document, made straight from the
    row (the parts' user ids are the stored text), at a third of the cost (tests/unit/test_export_render.py
    holds it to render). A value the row repeats (the parts of an equal split, the one payer's amount, an
    expense never edited: created_at = updated_at) is rendered once. Adds the parts' user ids to cited."""
    decimals, group_decimals = currency_decimals(r[3]), currency_decimals(r[6])
    payers, owed = orjson.loads(r[8]), orjson.loads(r[10])
    group_amount = format_amount(r[7], group_decimals)
    texts = {r[7]: group_amount}
    parts = []
    for who in (payers, owed):
        out = []
        for u, a in who:
            cited.add(u)
            text = texts.get(a)
            if text is None:
                texts[a] = text = format_amount(a, group_decimals)
            out.append({"user_id": u, "amount": text})
        parts.append(out)
    created_at = rfc3339(r[16])
    return orjson.dumps({
        "id": str(r[0]), "group_id": str(r[1]), "description": r[2], "amount": format_amount(r[4], decimals),
        "currency": r[3], "exchange_rate": r[5], "group_amount": group_amount,
        "paid_by": payers[0][0] if len(payers) == 1 else None, "payers": parts[0], "split_type": r[9],
        "shares": parts[1], "date": r[11].isoformat(), "category": r[12], "notes": r[13], "version": r[14],
        "created_by": str(r[15]), "created_at": created_at, "updated_by": str(r[17]),
        "updated_at": created_at if r[18] == r[16] else rfc3339(r[18]),
        "voided_at": rfc3339(r[19]) if r[19] else None, "recurring_id": str(r[20]) if r[20] else None,
        "versions": versions,
    })  # fmt: skip


class Snapshot:
    """One read-only snapshot of a group on one connection (of the engine's pool), read in keyset batches.
    The next batch is fetched while the current one is rendered (one query at a time on the connection:
    a lock orders them), so the database's time and the worker's overlap."""

    def __init__(self, conn: asyncpg.Connection, group_id: uuid.UUID, *, batch: int) -> None:
        self.conn = conn
        self.group_id = group_id
        self.batch = batch
        self._lock = asyncio.Lock()

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._lock:
            rows: list[asyncpg.Record] = await self.conn.fetch(sql, *args)
            return rows

    async def group(self) -> groups.GroupRecord:
        rows = await self._fetch(_GROUP, self.group_id)
        return groups.GroupRecord(**dict(rows[0]))

    async def members(self, sql: str = _MEMBERS, *args: Any) -> list[groups.MemberRecord]:
        rows = await self._fetch(sql, *(args or (self.group_id,)))
        return [groups.MemberRecord(**dict(r)) for r in rows]

    async def people(self, ids: Sequence[uuid.UUID]) -> list[groups.MemberRecord]:
        return await self.members(_PEOPLE, list(ids)) if ids else []

    async def cited(self) -> set[uuid.UUID]:
        return {r[0] for r in await self._fetch(_CITED, self.group_id)}

    async def _batches(self, sql: str, voided: bool) -> AsyncIterator[list[asyncpg.Record]]:
        query = sql.format(voided="" if voided else "AND voided_at IS NULL")
        ahead = asyncio.ensure_future(self._fetch(query, self.group_id, *_START, self.batch))
        try:
            while rows := await ahead:
                after = (rows[-1]["created_at"], rows[-1]["id"])
                ahead = asyncio.ensure_future(self._fetch(query, self.group_id, *after, self.batch))
                yield rows
        finally:
            if not ahead.done():
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ahead

    async def expenses(self, *, voided: bool) -> AsyncIterator[list[tuple[asyncpg.Record, list[Any]]]]:
        """Batches of (an _EXPENSES row, the expense's superseded versions as stored), oldest first."""
        async for rows in self._batches(_EXPENSES, voided):
            edited = [r[0] for r in rows if r[14] > 1]
            older: dict[uuid.UUID, list[Any]] = {e: [] for e in edited}
            if edited:
                for v in await self._fetch(_VERSIONS, self.group_id, edited):
                    older[v[0]].append(orjson.loads(v[1]))
            yield [(r, older.get(r[0], [])) for r in rows]

    async def settlements(self, *, voided: bool) -> AsyncIterator[list[SettlementRecord]]:
        async for rows in self._batches(_SETTLEMENTS, voided):
            yield [SettlementRecord(**dict(r)) for r in rows]


# ---- JSON -----------------------------------------------------------------------------------------


async def json_document(snap: Snapshot, *, now: dt.datetime) -> AsyncIterator[bytes]:
    """The quits export document, in pieces."""
    group = await snap.group()
    members = await snap.members()
    head = {"format": FORMAT, "version": VERSION, "exported_at": rfc3339(now), "group": groups.render(group),
            "members": [groups.render_member(m) for m in members]}  # fmt: skip
    yield orjson.dumps(head)[:-1] + b',"expenses":['
    cited: set[uuid.UUID] = {group.created_by}
    in_parts: set[str] = set()  # user ids as the parts store them
    first = True
    async for batch in snap.expenses(voided=True):
        out = []
        for row, older in batch:
            out.append(expense_json(row, older, in_parts))
            cited.add(row[15])
            cited.add(row[17])
            for doc in older:
                in_parts.update(p["user_id"] for p in doc["payers"] + doc["shares"])
                in_parts.update((doc["created_by"], doc["updated_by"]))
        yield (b"" if first else b",") + b",".join(out)
        first = False
    yield b'],"settlements":['
    first = True
    async for sbatch in snap.settlements(voided=True):
        yield (b"" if first else b",") + b",".join(orjson.dumps(settlements.render(s)) for s in sbatch)
        cited |= {u for s in sbatch for u in (s.from_user_id, s.to_user_id, s.created_by)}
        first = False
    cited |= {uuid.UUID(u) for u in in_parts}
    former = await snap.people(sorted(cited - {m.user_id for m in members}, key=str))
    yield b'],"former_members":' + orjson.dumps([groups.render_member(m) for m in former]) + b"}"


# ---- CSV ------------------------------------------------------------------------------------------

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ("Date", "Description", "Category", "Cost", "Currency")
PAYMENT = "Payment"


def safe_cell(text: str) -> str:
    """Text a spreadsheet would run as a formula gets a leading ' (OWASP's advice on CSV injection)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def column_names(names: Sequence[str]) -> list[str]:
    """Headers for people in order: a name taken already gets " #2", " #3", ... (never a header in use)."""
    taken: set[str] = set(CSV_COLUMNS)
    out = []
    for name in names:
        header, n = name, 1
        while header in taken:
            n += 1
            header = f"{name} #{n}"
        taken.add(header)
        out.append(header)
    return out


async def _flat(batches: AsyncIterator[list[Any]]) -> AsyncIterator[Any]:
    async for batch in batches:
        for item in batch:
            yield item


Row = tuple[dt.datetime, uuid.UUID, Any]  # (created_at, id, an _EXPENSES row or a SettlementRecord)


async def _merged(snap: Snapshot) -> AsyncIterator[Row]:
    """Expenses and settlements that are not voided, interleaved by (created_at, id)."""
    spent = _flat(snap.expenses(voided=False))
    paid = _flat(snap.settlements(voided=False))
    e, s = await anext(spent, None), await anext(paid, None)
    while e is not None or s is not None:
        if s is None or (e is not None and (e[0][16], e[0][0]) <= (s.created_at, s.id)):
            assert e is not None
            yield e[0][16], e[0][0], e[0]
            e = await anext(spent, None)
        else:
            yield s.created_at, s.id, s
            s = await anext(paid, None)


def expense_effects(r: Sequence[Any], column: dict[str, int]) -> dict[int, int]:
    """An _EXPENSES row's signed effect on each person's net (+paid, -owed), by column (user id as text)."""
    effects: dict[int, int] = {}
    for u, a in orjson.loads(r[8]):
        effects[column[u]] = effects.get(column[u], 0) + a
    for u, a in orjson.loads(r[10]):
        effects[column[u]] = effects.get(column[u], 0) - a
    return effects


async def csv_document(snap: Snapshot, *, chunk_rows: int) -> AsyncIterator[bytes]:
    group = await snap.group()
    members = await snap.members()
    people = members + await snap.people(sorted(await snap.cited() - {m.user_id for m in members}, key=str))
    column = {str(m.user_id): i for i, m in enumerate(people)}
    names = {str(m.user_id): m.name for m in people}
    decimals = currency_decimals(group.currency)
    zero = format_amount(0, decimals)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*CSV_COLUMNS, *(safe_cell(h) for h in column_names([m.name for m in people]))])
    rows = 0
    async for _, _, record in _merged(snap):
        cells = [zero] * len(people)
        if isinstance(record, SettlementRecord):
            frm, to = str(record.from_user_id), str(record.to_user_id)
            effects = {column[frm]: record.amount_minor, column[to]: -record.amount_minor}
            head = [record.created_at.date().isoformat(), safe_cell(f"{names[frm]} paid {names[to]}"), PAYMENT,
                    format_amount(record.amount_minor, decimals)]  # fmt: skip
        else:
            effects = expense_effects(record, column)
            head = [record[11].isoformat(), safe_cell(record[2]), safe_cell(record[12] or ""),
                    format_amount(record[7], decimals)]  # fmt: skip
        for i, amount in effects.items():
            cells[i] = format_amount(amount, decimals)
        writer.writerow([*head, group.currency, *cells])
        rows += 1
        if rows % chunk_rows == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


async def stream(
    engine: AsyncEngine, settings: Settings, group_id: uuid.UUID, *, fmt: str
) -> AsyncGenerator[bytes, None]:
    """The export of a group as fmt ("json" or "csv"), chunk by chunk, from one snapshot (a read-only
    REPEATABLE READ transaction on one pooled connection, held while the caller reads): what the API's
    GET .../export and the web's export page send. Close it (aclose) to give the connection back."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        async with conn.begin():
            timeout = int(settings.export_idle_timeout_ms)
            await conn.exec_driver_sql(f"SET LOCAL idle_in_transaction_session_timeout = {timeout}")
            raw = await conn.get_raw_connection()
            snap = Snapshot(raw.driver_connection, group_id, batch=settings.export_batch_rows)
            if fmt == "json":
                document = json_document(snap, now=dt.datetime.now(dt.UTC))
            else:
                document = csv_document(snap, chunk_rows=settings.export_batch_rows)
            async for chunk in document:
                yield chunk
