"""What the templates read: a group with its members and nets, names for ids, activity in words."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.domain.activity import ActivityRecord
from app.domain.expenses import ExpenseRecord
from app.domain.groups import GroupRecord, MemberRecord

_ACTIVITY = {
    "expense.created": "{actor} added an expense",
    "expense.updated": "{actor} edited an expense",
    "expense.voided": "{actor} voided an expense",
    "settlement.created": "{actor} recorded a payment",
    "settlement.voided": "{actor} voided a payment",
    "member.added": "{actor} added {user}",
    "member.removed": "{actor} removed {user}",
    "member.claimed": "{user} joined with an invite",
    "recurring.created": "{actor} set up a recurring expense",
    "recurring.updated": "{actor} changed a recurring expense",
    "recurring.stopped": "A recurring expense stopped",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupView:
    group: GroupRecord
    members: list[MemberRecord]
    nets: dict[uuid.UUID, int]
    me: uuid.UUID

    @property
    def currency(self) -> str:
        return self.group.currency

    @property
    def my_net(self) -> int:
        return self.nets.get(self.me, 0)

    def name(self, user_id: uuid.UUID | None) -> str:
        if user_id is None:
            return ""
        if user_id == self.me:
            return "You"
        for m in self.members:
            if m.user_id == user_id:
                return m.name
        return "A former member"

    def name_of(self, user_id: str) -> str:
        """The name for a user id as the services render it (a string)."""
        try:
            return self.name(uuid.UUID(user_id))
        except ValueError:
            return "Someone"

    def members_by_name(self) -> list[MemberRecord]:
        return sorted(self.members, key=lambda m: (m.user_id != self.me, m.name.casefold(), str(m.user_id)))

    def my_share(self, expense: ExpenseRecord) -> int:
        """What the expense did to my net: plus what I paid, minus what I owe (group currency)."""
        paid = sum(a for u, a in expense.payers if u == self.me)
        owed = sum(a for u, a in expense.owed if u == self.me)
        return paid - owed

    def describe(self, item: ActivityRecord) -> str:
        template = _ACTIVITY.get(item.type, item.type)
        return template.format(actor=self.name(item.actor_id), user=self.name(item.user_id))
