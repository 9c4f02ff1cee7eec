"""What every import source parses into: a new group, its people and its records, ready for one command.

The parsers (quits_format, ihatemoney, splitwise) are pure: bytes and options in, an ImportPlan out, or
one 422 listing every row and field at fault. Every person of the file becomes a guest member of the
new group, except the one the caller is (`?me=`, or, in a quits export, the caller's own user id),
who is the caller; a caller matched to nobody joins as one more member with no history.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import DomainError, FieldError
from app.core.money import is_currency_code
from app.domain.expenses import ExpenseRecord
from app.domain.groups import GroupRecord
from app.domain.settlements import SettlementRecord
from app.domain.users import UserRecord
from app.infra.ids import new_id, uuid7_from

SOURCES = ("quits", "ihatemoney", "splitwise")
MAX_LISTED = 1_000  # adjustments and skipped rows listed in the response (all are counted)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportOptions:
    caller: UserRecord
    name: str | None  # ?name=
    currency: str | None  # ?currency=
    me: str | None  # ?me=
    max_rows: int
    max_members: int
    now: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionRow:
    """A superseded version of an imported expense, as the API renders it (table expense_versions)."""

    expense_id: uuid.UUID
    version: int
    doc: dict[str, Any]
    updated_by: uuid.UUID
    updated_at: dt.datetime


@dataclass(slots=True, kw_only=True)
class ImportPlan:
    source: str
    group: GroupRecord
    guests: list[tuple[uuid.UUID, str]]  # (user id, name): every person but the caller
    former: list[uuid.UUID]  # guests who had left the source group: removed once everything is posted
    expenses: list[ExpenseRecord] = field(default_factory=list)
    versions: list[VersionRow] = field(default_factory=list)
    settlements: list[SettlementRecord] = field(default_factory=list)
    adjustments: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def members(self) -> list[uuid.UUID]:
        """Everyone the group starts with: the caller first, then every guest."""
        return [self.group.created_by] + [g for g, _ in self.guests]

    def nets(self) -> dict[uuid.UUID, int]:
        """Each person's net once every record is posted (voided records post nothing, net)."""
        nets: dict[uuid.UUID, int] = defaultdict(int)
        for e in self.expenses:
            if e.voided_at is None:
                for u, a in e.payers:
                    nets[u] += a
                for u, a in e.owed:
                    nets[u] -= a
        for s in self.settlements:
            if s.voided_at is None:
                nets[s.from_user_id] += s.amount_minor
                nets[s.to_user_id] -= s.amount_minor
        return nets


def query_error(name: str, msg: str) -> DomainError:
    return DomainError("validation-error", f"{name}: {msg}", fields=[FieldError((name,), msg, where="query")])


def group_currency(options: ImportOptions, found: Iterable[str], *, required_msg: str) -> str:
    """?currency=, else the one currency the file uses; 422 at query currency otherwise."""
    if options.currency is not None:
        if not is_currency_code(options.currency):
            raise query_error("currency", f"{options.currency} is not an active ISO 4217 currency code")
        return options.currency
    codes = sorted(set(found))
    if len(codes) == 1 and is_currency_code(codes[0]):
        return codes[0]
    raise query_error("currency", required_msg)


def group_name(options: ImportOptions, found: str | None, default: str) -> str:
    name = options.name if options.name is not None else (found or default)
    if not name.strip() or len(name) > 100 or "\x00" in name:
        raise query_error("name", "the group's name must have 1 to 100 characters, not only spaces")
    return name


def new_group(options: ImportOptions, *, name: str, currency: str) -> GroupRecord:
    return GroupRecord(id=new_id(), name=name, currency=currency, created_by=options.caller.id, created_at=options.now)


def ordered_ids(count: int) -> list[uuid.UUID]:
    """count fresh v7 ids in ascending order (one timestamp, consecutive random parts from a random start
    with room for any count): records given them in file order list in that order."""
    ms, start = time.time_ns() // 1_000_000, int.from_bytes(os.urandom(9))
    return [uuid7_from(ms, start + i) for i in range(count)]


class People:
    """The persons of a file, in order of appearance, each with the user id they get in the new group."""

    def __init__(self, options: ImportOptions) -> None:
        self.options = options
        self.names: list[str] = []
        self.ids: list[uuid.UUID] = []

    def add(self, name: str) -> int:
        self.names.append(name)
        self.ids.append(new_id())
        return len(self.names) - 1

    def choose_me(self, *, default: int | None = None) -> int | None:
        """The person the caller is: ?me= (by exact name, else by name ignoring case), else default."""
        me = self.options.me
        if me is None:
            chosen = default
        else:
            exact = [i for i, n in enumerate(self.names) if n == me]
            folded = exact or [i for i, n in enumerate(self.names) if n.casefold() == me.casefold()]
            if len(folded) > 1:
                raise query_error("me", f"{len(folded)} people in the file are named {me!r}; rename one first")
            if not folded:
                known = ", ".join(repr(n) for n in self.names[:20])
                raise query_error("me", f"nobody in the file is named {me!r} (the file names {known})")
            chosen = folded[0]
        if chosen is not None:
            self.ids[chosen] = self.options.caller.id
        if len(self.names) + (1 if chosen is None else 0) > self.options.max_members:
            msg = f"the file names {len(self.names)} people; a group has at most {self.options.max_members} members"
            raise DomainError("validation-error", msg, fields=[FieldError((), msg)])
        return chosen

    def guests(self) -> list[tuple[uuid.UUID, str]]:
        caller = self.options.caller.id
        return [(u, n) for u, n in zip(self.ids, self.names, strict=True) if u != caller]


def listed(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items[:MAX_LISTED]
