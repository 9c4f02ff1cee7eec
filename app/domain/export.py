"""A group's export, streamed: the quits JSON document, or a spreadsheet's CSV. Constant memory.

Both read one snapshot (a REPEATABLE READ, READ ONLY transaction on one pooled connection) in keyset
batches of `export_batch_rows` records, oldest first by (created_at, id), and render each record as its
resource's own renderer does (expense_json and settlement_json are held to expenses.render and
settlements.render by property tests), so the export says exactly what the API says.

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

from app.core.money import amount_texts
from app.core.records import rfc3339
from app.domain import groups
from app.domain.expenses import ExpenseRecord
from app.domain.settlements import SettlementRecord
from app.infra.config import Settings

FORMAT, VERSION = "quits", 1
_START = (dt.datetime(1, 1, 1, tzinfo=dt.UTC), uuid.UUID(int=0))
_EXPENSES = """
SELECT e.id::text AS id, e.description, e.currency, e.amount_minor, e.exchange_rate, e.group_currency,
       e.group_amount_minor, e.payers::text, e.split_type, e.shares::text, e.date, e.category, e.notes, e.version,
       e.created_by::text, e.created_at, e.updated_by::text, NULLIF(e.updated_at, e.created_at), e.voided_at,
       e.recurring_id::text
FROM expenses e WHERE e.group_id = $1 AND (e.created_at, e.id) > ($2, $3::uuid)
ORDER BY e.created_at, e.id LIMIT $4
"""
"""An expense as the export reads it: what the API renders but the group's id (the export's own), with
updated_at NULL for an expense never edited (created_at then); 20 columns, fewer to decode."""
_SETTLEMENTS = """
SELECT s.id::text AS id, s.from_user_id::text, s.to_user_id::text, s.amount_minor, s.currency, s.note,
       s.created_by::text, s.created_at, s.voided_at
FROM settlements s WHERE s.group_id = $1 AND (s.created_at, s.id) > ($2, $3::uuid)
ORDER BY s.created_at, s.id LIMIT $4
"""
_SHEET_ROWS = """
(SELECT created_at, id, date, description, category, group_amount_minor AS cost_minor, payers::text AS paid,
        shares::text AS owed, NULL::text AS from_user_id, NULL::text AS to_user_id
 FROM expenses WHERE group_id = $1 AND voided_at IS NULL AND (created_at, id) > ($2, $3)
 ORDER BY created_at, id LIMIT $4)
UNION ALL
(SELECT created_at, id, (created_at AT TIME ZONE 'UTC')::date, NULL, NULL, amount_minor, NULL, NULL,
        from_user_id::text, to_user_id::text
 FROM settlements WHERE group_id = $1 AND voided_at IS NULL AND (created_at, id) > ($2, $3)
 ORDER BY created_at, id LIMIT $4)
ORDER BY created_at, id LIMIT $4
"""
"""The CSV's rows: expenses and settlements that are not voided, interleaved by (created_at, id), in one
shape: an expense's parts, or a settlement's two people. Each table's next rows come by its (group_id,
created_at, id) index (a LIMIT in each branch: the planner would rather sort a whole group's rows than
merge two index scans); the first $4 of the two make the batch."""
_VERSIONS = """
SELECT expense_id::text, doc::text FROM expense_versions WHERE group_id = $1 AND expense_id = ANY($2::uuid[])
ORDER BY expense_id, version
"""
_MEMBERS = """
SELECT u.id AS user_id, u.name, u.email, u.guest FROM memberships m JOIN users u ON u.id = m.user_id
WHERE m.group_id = $1 ORDER BY u.id
"""
_CITED = "SELECT DISTINCT user_id FROM ledger_entries WHERE group_id = $1"
_PEOPLE = "SELECT id AS user_id, name, NULL::text AS email, guest FROM users WHERE id = ANY($1::uuid[]) ORDER BY id"
_GROUP = "SELECT id, name, currency, created_by, created_at FROM groups WHERE id = $1"
_Z = orjson.OPT_UTC_Z
"""orjson renders a UTC datetime as app.core.records.rfc3339 does, and a date as isoformat()."""


def record_of(r: Sequence[Any], group_id: str) -> ExpenseRecord:
    """A row of _EXPENSES as the record the API renders (the export's fast renderers must agree with it)."""
    def pairs(text: str) -> tuple[tuple[uuid.UUID, int], ...]:
        return tuple((uuid.UUID(u), a) for u, a in orjson.loads(text))

    return ExpenseRecord(
        id=uuid.UUID(r[0]), group_id=uuid.UUID(group_id), description=r[1], currency=r[2], amount_minor=r[3],
        exchange_rate=r[4], group_currency=r[5], group_amount_minor=r[6], payers=pairs(r[7]), split_type=r[8],
        owed=pairs(r[9]), date=r[10], category=r[11], notes=r[12], version=r[13], created_by=uuid.UUID(r[14]),
        created_at=r[15], updated_by=uuid.UUID(r[16]), updated_at=r[17] or r[15], voided_at=r[18],
        recurring_id=uuid.UUID(r[19]) if r[19] else None, occurrence_date=None,
    )  # fmt: skip


def expense_json(r: Sequence[Any], versions: list[Any], cited: set[str], group_id: str) -> bytes:
    """expenses.render(record_of(r, group_id)) plus its versions, encoded: the same document, made straight
    from the row at a third of the cost (tests/unit/test_export_render.py holds it to render): the ids come
    as text from the database, orjson renders the timestamps and the date, and the amounts' texts are
    memoized. Adds every user id the expense and its versions cite to cited."""
    group_amounts = amount_texts(r[5])
    payers, owed = orjson.loads(r[7]), orjson.loads(r[9])
    cited.update(dict(payers))  # the parts' user ids: dict() of [user id, amount] pairs keys them
    cited.update(dict(owed))
    cited.add(r[14])
    cited.add(r[16])
    for doc in versions:
        cited.update(p["user_id"] for p in doc["payers"] + doc["shares"])
        cited.update((doc["created_by"], doc["updated_by"]))
    return orjson.dumps({
        "id": r[0], "group_id": group_id, "description": r[1], "amount": amount_texts(r[2])[r[3]], "currency": r[2],
        "exchange_rate": r[4], "group_amount": group_amounts[r[6]],
        "paid_by": payers[0][0] if len(payers) == 1 else None,
        "payers": [{"user_id": u, "amount": group_amounts[a]} for u, a in payers], "split_type": r[8],
        "shares": [{"user_id": u, "amount": group_amounts[a]} for u, a in owed], "date": r[10], "category": r[11],
        "notes": r[12], "version": r[13], "created_by": r[14], "created_at": r[15], "updated_by": r[16],
        "updated_at": r[17] or r[15], "voided_at": r[18], "recurring_id": r[19], "versions": versions,
    }, option=_Z)  # fmt: skip


def settlement_record_of(r: Sequence[Any], group_id: str) -> SettlementRecord:
    """A row of _SETTLEMENTS (a settlement but its group's id, the export's own) as the record the API renders."""
    return SettlementRecord(
        id=uuid.UUID(r[0]), group_id=uuid.UUID(group_id), from_user_id=uuid.UUID(r[1]), to_user_id=uuid.UUID(r[2]),
        amount_minor=r[3], currency=r[4], note=r[5], created_by=uuid.UUID(r[6]), created_at=r[7], voided_at=r[8],
    )  # fmt: skip


def settlement_json(r: Sequence[Any], cited: set[str], group_id: str) -> bytes:
    """settlements.render(settlement_record_of(r, group_id)), encoded, straight from the row; adds its people
    to cited."""
    cited.update((r[1], r[2], r[6]))
    return orjson.dumps({
        "id": r[0], "group_id": group_id, "from_user_id": r[1], "to_user_id": r[2], "amount": amount_texts(r[4])[r[3]],
        "currency": r[4], "note": r[5], "created_by": r[6], "created_at": r[7], "voided_at": r[8],
    }, option=_Z)  # fmt: skip


class Snapshot:
    """One read-only snapshot of a group on one connection (of the engine's pool), read in keyset batches.
    The next batch's query is sent before the current batch goes to the caller, so the database reads it
    while the worker renders (one query at a time on the connection: a lock orders them)."""

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

    async def batches(self, sql: str) -> AsyncIterator[list[asyncpg.Record]]:
        """The rows of sql (a keyset query on $1 group, ($2, $3) after (created_at, id), $4 rows), in batches."""
        ahead = asyncio.ensure_future(self._fetch(sql, self.group_id, *_START, self.batch))
        try:
            while rows := await ahead:
                after = (rows[-1]["created_at"], rows[-1]["id"])
                ahead = asyncio.ensure_future(self._fetch(sql, self.group_id, *after, self.batch))
                await asyncio.sleep(0)  # the task sends its query now: the caller renders without awaiting
                yield rows
        finally:
            if not ahead.done():
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ahead

    async def expenses(self) -> AsyncIterator[tuple[list[asyncpg.Record], dict[str, list[Any]]]]:
        """Batches of _EXPENSES rows, oldest first, each with the superseded versions (as stored) of the
        batch's edited expenses (version > 1), by expense id."""
        async for rows in self.batches(_EXPENSES):
            edited = [r[0] for r in rows if r[13] > 1]
            older: dict[str, list[Any]] = {e: [] for e in edited}
            if edited:
                for v in await self._fetch(_VERSIONS, self.group_id, edited):
                    older[v[0]].append(orjson.loads(v[1]))
            yield rows, older


# ---- JSON -----------------------------------------------------------------------------------------


async def json_document(snap: Snapshot, *, now: dt.datetime) -> AsyncIterator[bytes]:
    """The quits export document, in pieces."""
    group = await snap.group()
    members = await snap.members()
    head = {"format": FORMAT, "version": VERSION, "exported_at": rfc3339(now), "group": groups.render(group),
            "members": [groups.render_member(m) for m in members]}  # fmt: skip
    yield orjson.dumps(head)[:-1] + b',"expenses":['
    cited: set[str] = {str(group.created_by)}  # user ids as text
    gid = str(group.id)
    separator = b""
    async for rows, older in snap.expenses():
        yield separator + b",".join([expense_json(r, older[r[0]] if r[13] > 1 else [], cited, gid) for r in rows])
        separator = b","
    yield b'],"settlements":['
    separator = b""
    async for rows in snap.batches(_SETTLEMENTS):
        yield separator + b",".join([settlement_json(r, cited, gid) for r in rows])
        separator = b","
    former = await snap.people(sorted({uuid.UUID(u) for u in cited} - {m.user_id for m in members}, key=str))
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


def expense_effects(paid: str, owed: str, column: dict[str, int]) -> dict[int, int]:
    """An expense's signed effect on each person's net (+paid, -owed), by column (user id as text), from
    its stored parts (payers, shares)."""
    effects: dict[int, int] = {}
    for u, a in orjson.loads(paid):
        effects[column[u]] = effects.get(column[u], 0) + a
    for u, a in orjson.loads(owed):
        effects[column[u]] = effects.get(column[u], 0) - a
    return effects


async def csv_document(snap: Snapshot) -> AsyncIterator[bytes]:
    """The spreadsheet, a batch of rows at a time (columns: the module's docstring)."""
    group = await snap.group()
    members = await snap.members()
    people = members + await snap.people(sorted(await snap.cited() - {m.user_id for m in members}, key=str))
    column = {str(m.user_id): i for i, m in enumerate(people)}
    names = {str(m.user_id): m.name for m in people}
    amounts = amount_texts(group.currency)
    blank = [amounts[0]] * len(people)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*CSV_COLUMNS, *(safe_cell(h) for h in column_names([m.name for m in people]))])
    async for rows in snap.batches(_SHEET_ROWS):
        for _, _, date, description, category, cost_minor, paid, owed, frm, to in rows:
            cells = blank.copy()
            if frm is None:
                effects = expense_effects(paid, owed, column)
                head = [date.isoformat(), safe_cell(description), safe_cell(category or ""), amounts[cost_minor]]
            else:
                effects = {column[frm]: cost_minor, column[to]: -cost_minor}
                head = [date.isoformat(), safe_cell(f"{names[frm]} paid {names[to]}"), PAYMENT, amounts[cost_minor]]
            for i, amount in effects.items():
                cells[i] = amounts[amount]
            writer.writerow([*head, group.currency, *cells])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if tail := buffer.getvalue():  # the header, when no row follows it
        yield tail.encode()


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
                document = csv_document(snap)
            async for chunk in document:
                yield chunk
