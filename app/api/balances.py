from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from sqlalchemy import text
from starlette.responses import Response

from app.api.deps import CurrentUser, EngineDep
from app.api.jsonbody import StrictJsonRoute
from app.api.pagination import PageDep, encode_seq_cursor, require_seq_cursor, scope_of
from app.api.render import page_body, problems, respond
from app.core.money import currency_decimals, format_amount
from app.core.records import rfc3339
from app.domain.groups import group_for_member
from app.domain.schemas import BalancesOut, LedgerEntryOut, Page
from app.ledger.postings import suggest_payments
from app.ledger.reads import read_nets

router = APIRouter(tags=["balances"], route_class=StrictJsonRoute)


@router.get(
    "/groups/{group_id}/balances",
    response_model=BalancesOut,
    responses=problems(401, 404, 422),
    summary="Every current member's net (positive: the group owes them) and suggested settle-up payments",
    description=(
        "Lists every current member (zero nets included); nets sum to zero. Paying every suggested payment "
        "brings every net to zero, with at most n - 1 payments for n members with a non-zero net."
    ),
)
async def get_balances(group_id: UUID, user: CurrentUser, engine: EngineDep) -> Response:
    async with engine.connect() as conn:
        group = await group_for_member(conn, group_id, user.id)
        nets = await read_nets(conn, group_id)
    decimals = currency_decimals(group.currency)
    return respond(
        {
            "currency": group.currency,
            "balances": [{"user_id": str(u), "net": format_amount(n, decimals)} for u, n in nets.items()],
            "suggested_payments": [
                {
                    "from_user_id": str(p.from_user_id),
                    "to_user_id": str(p.to_user_id),
                    "amount": format_amount(p.amount_minor, decimals),
                }
                for p in suggest_payments(nets)
            ],
        }
    )


_LEDGER_PAGE = text(
    """
    SELECT seq, id, user_id, amount_minor, kind, expense_id, settlement_id, created_at
    FROM ledger_entries WHERE group_id = :g AND (CAST(:after AS bigint) IS NULL OR seq < :after)
    ORDER BY seq DESC LIMIT :limit
    """
)


@router.get(
    "/groups/{group_id}/ledger",
    response_model=Page[LedgerEntryOut],
    responses=problems(400, 401, 404, 422),
    summary="The immutable ledger entries, newest first",
    description=(
        "Entries are never updated or deleted. Each financial event's entries sum to zero: an expense posts "
        "+amount to the payer and -owed to each participant, a settlement +amount to `from_user_id` and "
        "-amount to `to_user_id`, an edit or void the exact negation of the entries it replaces."
    ),
)
async def get_ledger(group_id: UUID, user: CurrentUser, engine: EngineDep, page: PageDep) -> Response:
    scope = scope_of("ledger", group_id)
    after = require_seq_cursor(page, scope)
    async with engine.connect() as conn:
        group = await group_for_member(conn, group_id, user.id)
        rows = (await conn.execute(_LEDGER_PAGE, {"g": group_id, "after": after, "limit": page.limit + 1})).all()
    decimals = currency_decimals(group.currency)
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    items = [
        {
            "id": str(r.id),
            "user_id": str(r.user_id),
            "amount": format_amount(r.amount_minor, decimals),
            "kind": r.kind,
            "expense_id": str(r.expense_id) if r.expense_id else None,
            "settlement_id": str(r.settlement_id) if r.settlement_id else None,
            "created_at": rfc3339(r.created_at),
        }
        for r in rows
    ]
    return respond(page_body(items, encode_seq_cursor(scope, rows[-1].seq) if more else None))
