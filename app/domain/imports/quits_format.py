"""Pure: a quits JSON export (format "quits", version 1) → an ImportPlan of an equal group.

Every record is checked as the API would have checked it when it was written (money grammar and the
currency's decimals, parts adding up to the total in the group's currency, the conversion of a
foreign amount, text lengths, dates), every person a record cites must be in `members` or
`former_members`, and the people who had left must come out with a zero net. Records keep their
fields, versions and timestamps; only ids are new (the caller keeps theirs). Faults are reported at
`["body", "expenses", <index>, <field>, ...]` (and "settlements", "members", ...).
"""

from __future__ import annotations

import uuid
from typing import Any

from app.core.conversion import ConversionError, convert_total, parse_rate
from app.core.money import MAX_MINOR, currency_decimals, is_currency_code
from app.core.records import Entry
from app.core.splits import MAX_PARTICIPANTS
from app.domain import expenses
from app.domain.expenses import ExpenseRecord
from app.domain.imports.fields import Problems, Reader, too_large
from app.domain.imports.plan import (
    ImportOptions,
    ImportPlan,
    People,
    VersionRow,
    group_name,
    new_group,
    ordered_ids,
    query_error,
)
from app.domain.schemas import MAX_PAYERS
from app.domain.settlements import SettlementRecord

FORMAT, VERSION = "quits", 1
SPLIT_TYPES = ("equal", "percentage", "exact", "shares")


class _Context:
    def __init__(self, problems: Problems, people: dict[str, uuid.UUID], *, group: str, currency: str) -> None:
        self.problems = problems
        self.people = people  # the file's user id (text) → the id here
        self.source_group = group
        self.currency = currency
        self.decimals = currency_decimals(currency)

    def person(self, r: Reader, value: Any, field: str | tuple[str | int, ...]) -> uuid.UUID | None:
        if isinstance(value, str) and value in self.people:
            return self.people[value]
        r.fail(field, "must be the user_id of someone in members or former_members")
        return None

    def parts(self, r: Reader, value: Any, name: str, *, high: int, zero: bool) -> tuple[Entry, ...] | None:
        """[{"user_id", "amount"}, ...] in the group's currency: distinct people, amounts > 0 (>= 0 if zero)."""
        found: list[Entry] = []
        for i, item in enumerate(r.items(value, name, low=1, high=high)):
            part = r.mapping(item, (name, i))
            who = self.person(r, part.get("user_id"), (name, i, "user_id"))
            amount = r.money(part.get("amount"), (name, i, "amount"), self.decimals, zero=zero)
            if who is not None and amount is not None:
                found.append((who, amount))
        if len({u for u, _ in found}) != len(found):
            r.fail(name, "must name each person once")
            return None
        return tuple(sorted(found, key=lambda p: str(p[0])))


def _people(
    doc: dict[str, Any], options: ImportOptions, problems: Problems
) -> tuple[People, dict[str, uuid.UUID], int]:
    """members then former_members; returns the people, file id → new id, and how many are current."""
    people, ids = People(options), {}
    current = 0
    for section in ("members", "former_members"):
        for i, item in enumerate(Reader(problems, ()).items(doc.get(section, []), section, low=0, high=10**6)):
            r = Reader(problems, (section, i))
            m = r.mapping(item, ())
            key, name = r.uuid(m.get("user_id"), "user_id"), r.text(m.get("name"), "name", max_len=100)
            if key is None or name is None:
                continue
            if str(key) in ids:
                r.fail("user_id", "appears twice in members and former_members")
                continue
            people.add(name)
            ids[str(key)] = people.ids[-1]
            current += section == "members"
    mine = [i for i, k in enumerate(ids) if k == str(options.caller.id) and i < current]
    me = people.choose_me(default=mine[0] if mine else None)
    if me is not None:
        if me >= current:
            raise query_error("me", "the caller must be a current member in the file, not a former one")
        ids[list(ids)[me]] = options.caller.id
    return people, ids, current


def _expense(
    ctx: _Context, r: Reader, doc: dict[str, Any], *, expense_id: uuid.UUID, group: uuid.UUID
) -> ExpenseRecord | None:
    """One expense version as the API renders it → its record here (None after a fault)."""
    if doc.get("group_id") != ctx.source_group:
        r.fail("group_id", "must be the exported group's id")
    currency = doc.get("currency")
    if not isinstance(currency, str) or not is_currency_code(currency):
        r.fail("currency", "must be an active ISO 4217 currency code")
        return None
    decimals = currency_decimals(currency)
    amount = r.money(doc.get("amount"), "amount", decimals)
    group_amount = r.money(doc.get("group_amount"), "group_amount", ctx.decimals)
    rate_text = doc.get("exchange_rate")
    if currency == ctx.currency:
        if rate_text is not None:
            r.fail("exchange_rate", "must be null in the group's currency")
        elif amount is not None and group_amount is not None and amount != group_amount:
            r.fail("group_amount", "must equal amount in the group's currency")
    else:
        try:
            rate = parse_rate(rate_text)
        except ConversionError as exc:
            r.fail("exchange_rate", f"exchange_rate {exc}")
        else:
            if amount is not None and group_amount is not None:
                converted = convert_total(amount, rate, from_decimals=decimals, to_decimals=ctx.decimals)
                if converted != group_amount or not 0 < converted <= MAX_MINOR:
                    r.fail("group_amount", "must be amount x exchange_rate, rounded half up, in the group's currency")
    # A payer's part converted into the group's currency may round to zero (1 JPY in a USD group).
    payers = ctx.parts(r, doc.get("payers"), "payers", high=MAX_PAYERS, zero=currency != ctx.currency)
    owed = ctx.parts(r, doc.get("shares"), "shares", high=MAX_PARTICIPANTS, zero=True)
    for name, parts in (("payers", payers), ("shares", owed)):
        if parts is not None and group_amount is not None and sum(a for _, a in parts) != group_amount:
            r.fail(name, "amounts must add up to group_amount")
    paid_by = doc.get("paid_by")
    sole = payers[0][0] if payers is not None and len(payers) == 1 else None
    if payers is not None and (ctx.people.get(paid_by) if isinstance(paid_by, str) else paid_by) != sole:
        r.fail("paid_by", "must be the payer when there is exactly one, else null")
    if doc.get("split_type") not in SPLIT_TYPES:
        r.fail("split_type", f"must be one of {', '.join(SPLIT_TYPES)}")
    notes = doc.get("notes")
    if notes is not None and (not isinstance(notes, str) or len(notes) > 2000 or "\x00" in notes):
        r.fail("notes", "must be null or a string of at most 2000 characters without NUL")
    fields = {
        "description": r.text(doc.get("description"), "description", max_len=500),
        "date": r.date(doc.get("date"), "date"),
        "version": r.integer(doc.get("version"), "version", low=1, high=2**31 - 1),
        "created_by": ctx.person(r, doc.get("created_by"), "created_by"),
        "created_at": r.timestamp(doc.get("created_at"), "created_at"),
        "updated_by": ctx.person(r, doc.get("updated_by"), "updated_by"),
        "updated_at": r.timestamp(doc.get("updated_at"), "updated_at"),
    }
    category = r.text(doc.get("category"), "category", max_len=50, optional=True)
    voided_at = r.timestamp(doc.get("voided_at"), "voided_at", optional=True)
    if amount is None or group_amount is None or payers is None or owed is None or None in fields.values():
        return None
    return ExpenseRecord(
        id=expense_id, group_id=group, currency=currency, amount_minor=amount,
        exchange_rate=rate_text if currency != ctx.currency else None, group_currency=ctx.currency,
        group_amount_minor=group_amount, payers=payers, split_type=doc["split_type"], owed=owed, category=category,
        notes=notes, voided_at=voided_at, **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def _expenses(ctx: _Context, doc: dict[str, Any], plan: ImportPlan) -> None:
    items = Reader(ctx.problems, ()).items(doc.get("expenses", []), "expenses", low=0, high=10**7)
    seen: set[Any] = set()
    for i, (item, expense_id) in enumerate(zip(items, ordered_ids(len(items)), strict=True)):
        r = Reader(ctx.problems, ("expenses", i))
        current = r.mapping(item, ())
        source_id = current.get("id")
        if not isinstance(source_id, str) or source_id in seen:
            r.fail("id", "must be an expense id, once in the file")
        else:
            seen.add(source_id)
        record = _expense(ctx, r, current, expense_id=expense_id, group=plan.group.id)
        versions = r.items(current.get("versions", []), "versions", low=0, high=10**6)
        if record is not None and len(versions) != record.version - 1:
            r.fail("versions", f"must hold the {record.version - 1} earlier versions, oldest first")
        for v, version in enumerate(versions):
            rv = Reader(ctx.problems, ("expenses", i, "versions", v))
            body = rv.mapping(version, ())
            if body.get("id") != source_id:
                rv.fail("id", "must be the expense's id")
            old = _expense(ctx, rv, body, expense_id=expense_id, group=plan.group.id)
            if old is not None and (old.version != v + 1 or old.voided_at is not None):
                rv.fail("version", f"must be version {v + 1}, not voided")
            elif old is not None:
                doc_ = expenses.render(old)
                plan.versions.append(VersionRow(expense_id=expense_id, version=old.version, doc=doc_,
                                                updated_by=old.updated_by, updated_at=old.updated_at))  # fmt: skip
        if record is not None:
            plan.expenses.append(record)


def _settlements(ctx: _Context, doc: dict[str, Any], plan: ImportPlan) -> None:
    items = Reader(ctx.problems, ()).items(doc.get("settlements", []), "settlements", low=0, high=10**7)
    seen: set[Any] = set()
    for i, (item, settlement_id) in enumerate(zip(items, ordered_ids(len(items)), strict=True)):
        r = Reader(ctx.problems, ("settlements", i))
        s = r.mapping(item, ())
        if not isinstance(s.get("id"), str) or s["id"] in seen:
            r.fail("id", "must be a settlement id, once in the file")
        else:
            seen.add(s["id"])
        if s.get("group_id") != ctx.source_group:
            r.fail("group_id", "must be the exported group's id")
        if s.get("currency") != ctx.currency:
            r.fail("currency", "must be the group's currency")
        sides = ctx.person(r, s.get("from_user_id"), "from_user_id"), ctx.person(r, s.get("to_user_id"), "to_user_id")
        if sides[0] is not None and sides[0] == sides[1]:
            r.fail("to_user_id", "must differ from from_user_id")
        note = s.get("note")
        if note is not None and (not isinstance(note, str) or len(note) > 500 or "\x00" in note):
            r.fail("note", "must be null or a string of at most 500 characters without NUL")
        values = {
            "amount_minor": r.money(s.get("amount"), "amount", ctx.decimals),
            "created_by": ctx.person(r, s.get("created_by"), "created_by"),
            "created_at": r.timestamp(s.get("created_at"), "created_at"),
        }
        voided_at = r.timestamp(s.get("voided_at"), "voided_at", optional=True)
        if None in values.values() or sides[0] is None or sides[1] is None:
            continue
        plan.settlements.append(SettlementRecord(
            id=settlement_id, group_id=plan.group.id, from_user_id=sides[0], to_user_id=sides[1],
            currency=ctx.currency, note=note, voided_at=voided_at, **values,  # type: ignore[arg-type]
        ))  # fmt: skip


def parse(doc: Any, options: ImportOptions) -> ImportPlan:
    """A parsed quits export (a JSON object, numbers as Decimal) → the plan; one 422 listing every fault."""
    problems, top = Problems(), Reader(Problems(), ())
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        top.problems.add(("format",), f'must be "{FORMAT}"')
        top.problems.check()
    if type(doc.get("version")) is not int or doc["version"] != VERSION:
        problems.add(("version",), f"must be {VERSION} (the only version this service reads)")
        problems.check()
    rows = sum(len(doc.get(k) or ()) for k in ("expenses", "settlements") if isinstance(doc.get(k), list))
    if rows > options.max_rows:
        raise too_large(options.max_rows, "expenses and settlements")
    g = Reader(problems, ("group",))
    group = g.mapping(doc.get("group"), ())
    source_group, currency = g.uuid(group.get("id"), "id"), group.get("currency")
    name = g.text(group.get("name"), "name", max_len=100)
    if not isinstance(currency, str) or not is_currency_code(currency):
        g.fail("currency", "must be an active ISO 4217 currency code")
    problems.check()
    assert isinstance(currency, str) and source_group is not None
    if options.currency is not None and options.currency != currency:
        raise query_error("currency", f"must be {currency}, the currency of the exported group (or absent)")
    people, ids, current = _people(doc, options, problems)
    problems.check()
    ctx = _Context(problems, ids, group=str(source_group), currency=currency)
    plan = ImportPlan(
        source=FORMAT,
        group=new_group(options, name=group_name(options, name, "Imported group"), currency=currency),
        guests=people.guests(),
        former=[u for u in people.ids[current:]],
    )
    _expenses(ctx, doc, plan)
    _settlements(ctx, doc, plan)
    nets = plan.nets()
    for k, user_id in enumerate(people.ids[current:]):
        if nets.get(user_id, 0):
            problems.add(("former_members", k), "someone who left the group must come out with a zero net")
    problems.check()
    return plan
