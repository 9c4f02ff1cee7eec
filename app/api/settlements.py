from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deps import CurrentUser, EngineDep, not_found_unless_member, writable_currency
from app.api.expenses import IdempotencyKeyHeader, admitted, claim_for, outcome_response
from app.api.jsonbody import StrictJsonRoute
from app.api.pagination import PageDep, require_time_cursor
from app.api.render import problems, time_page
from app.core.errors import DomainError
from app.domain import settlements as svc
from app.domain.groups import group_for_member
from app.domain.schemas import Page, SettlementIn, SettlementOut
from app.infra.testhooks import faults_for

router = APIRouter(tags=["settlements"], route_class=StrictJsonRoute)


@router.post(
    "/groups/{group_id}/settlements",
    status_code=201,
    response_model=SettlementOut,
    responses=problems(400, 401, 404, 409, 422, 503),
    summary="Record a payment from one member to another (idempotent with Idempotency-Key)",
    description=(
        "Any member may record a settlement between two different current members (`from` pays `to`). "
        "The amount may not exceed min(-net(from), net(to)), checked under the balance locks; "
        "otherwise 422 with problem type ending in settlement-exceeds-balance."
    ),
)
async def post_settlement(
    group_id: UUID,
    body: SettlementIn,
    request: Request,
    user: CurrentUser,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    # Read from app.state, not injected: each dependency costs the hot path a resolution step.
    engine, settings = request.app.state.engine, request.app.state.settings
    claim = claim_for(request, user.id, idempotency_key, settings, await request.body())
    currency = await writable_currency(request, engine, group_id, user)
    try:
        amount_minor = svc.parse_settlement_amount(body, currency)
    except DomainError:
        await not_found_unless_member(engine, group_id, user.id)
        raise
    faults = faults_for(request, settings)
    async with admitted(request, claim, group_id, request.app.state.settle_gate):
        outcome, rendered = await svc.create(
            request.app.state.write_pool,
            settings,
            claim=claim,
            group_id=group_id,
            currency=currency,
            body=body,
            amount_minor=amount_minor,
            faults=faults,
        )
    return outcome_response(outcome, rendered, svc.CREATED)


@router.get(
    "/groups/{group_id}/settlements",
    response_model=Page[SettlementOut],
    responses=problems(400, 401, 404, 422),
    summary="List settlements, newest first",
    description="Keyset-paginated on (created_at, id), newest first.",
)
async def list_settlements(group_id: UUID, user: CurrentUser, engine: EngineDep, page: PageDep) -> Response:
    after = require_time_cursor(page)
    async with engine.connect() as conn:
        await group_for_member(conn, group_id, user.id)
        rows = await svc.list_page(conn, group_id, page.limit + 1, after)
    return time_page(rows, page.limit, svc.render)
