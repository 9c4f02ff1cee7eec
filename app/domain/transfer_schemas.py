"""Wire models of the export document and of the import's files and response (the OpenAPI document's; the
export is rendered by app.domain.export, the files are read by app.domain.imports)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from app.domain.schemas import ExpenseOut, GroupDetail, GroupOut, MemberOut, SettlementOut, SignedMoney

JsonNumber = Annotated[object, WithJsonSchema({"type": "number"})]


class ExportedExpense(ExpenseOut):
    versions: list[ExpenseOut] = Field(description="Its superseded versions, oldest first (GET .../versions).")


class QuitsExport(BaseModel):
    """A whole group, as `GET .../export?format=json` streams it and `POST /v1/groups/import` reads it."""

    format: Literal["quits"]
    version: Literal[1] = Field(description="The document's version; this service reads version 1.")
    exported_at: datetime
    group: GroupOut
    members: list[MemberOut] = Field(description="The current members, as GET .../members lists them.")
    expenses: list[ExportedExpense] = Field(description="Every expense, voided ones too, oldest first.")
    settlements: list[SettlementOut] = Field(description="Every settlement, voided ones too, oldest first.")
    former_members: list[MemberOut] = Field(
        description="People the records cite who are no longer members (`email` withheld: null)."
    )


class IhatemoneyBill(BaseModel):
    """One bill of ihatemoney's JSON export (`/<project>/export/bills.json`, ihatemoney 7.2.1)."""

    what: str
    bill_type: Literal["Expense", "Reimbursement"]
    amount: JsonNumber = Field(description="A JSON number, read as the decimal it prints as (never a binary float).")
    currency: str = Field(description='An ISO 4217 code, or "XXX" (no currency).')
    date: str = Field(description="YYYY-MM-DD")
    payer_name: str
    payer_weight: JsonNumber = Field(description="The payer's weight (someone who never pays has weight 1).")
    owers: list[str]


class Adjustment(BaseModel):
    """Where a source's own rounding left a remainder, and who took it."""

    member: str
    user_id: str
    row: int | None = Field(default=None, description="Splitwise: the record number (the header is 1).")
    amount: SignedMoney | None = Field(default=None, description="Splitwise: what was taken off the row's cell.")
    source_balance: SignedMoney | None = Field(default=None, description="ihatemoney: its balance, rounded.")
    balance: SignedMoney | None = Field(default=None, description="ihatemoney: the balance here.")
    difference: SignedMoney | None = None
    reason: str


class Skipped(BaseModel):
    row: int
    reason: str


class ImportSummary(BaseModel):
    source: Literal["quits", "ihatemoney", "splitwise"]
    expenses: int
    settlements: int
    adjustments: list[Adjustment] = Field(description="At most 1,000 listed; adjustments_count counts them all.")
    adjustments_count: int
    skipped: list[Skipped] = Field(description="Rows that move no money (at most 1,000 listed).")
    skipped_count: int


class ImportOut(GroupDetail):
    import_: ImportSummary = Field(alias="import")
