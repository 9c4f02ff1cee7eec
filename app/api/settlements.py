from __future__ import annotations

from uuid import UUID

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deps import CurrentUser, EngineDep, SettingsDep, not_found_unless_member, writable_currency
from app.api.expenses import (
    IdempotencyKeyHeader,
    IfMatchHeader,
    admitted,
    claim_for,
    created_headers,
    outcome_response,
    parse_if_match,
)
from app.api.jsonbody import StrictJsonRoute
from app.api.pagination import PageDep, require_time_cursor, scope_of
from app.api.render import problems, respond, time_page
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
    return outcome_response(outcome, rendered, svc.CREATED, created_headers(group_id, rendered, "settlements"))


@router.get(
    "/groups/{group_id}/settlements",
    response_model=Page[SettlementOut],
    responses=problems(400, 401, 404, 422),
    summary="List settlements, newest first",
    description="Keyset-paginated on (created_at, id), newest first.",
)
async def list_settlements(group_id: UUID, user: CurrentUser, engine: EngineDep, page: PageDep) -> Response:
    scope = scope_of("settlements", group_id)
    after = require_time_cursor(page, scope)
    async with engine.connect() as conn:
        await group_for_member(conn, group_id, user.id)
        rows = await svc.list_page(conn, group_id, page.limit + 1, after)
    return time_page(rows, page.limit, svc.render, scope)


@router.get(
    "/groups/{group_id}/settlements/{settlement_id}",
    response_model=SettlementOut,
    responses=problems(401, 404, 422),
    summary="One settlement (voided ones too)",
)
async def get_settlement(group_id: UUID, settlement_id: UUID, user: CurrentUser, engine: EngineDep) -> Response:
    async with engine.connect() as conn:
        await group_for_member(conn, group_id, user.id)
        settlement = await svc.get(conn, group_id, settlement_id)
    return respond(svc.render(settlement), headers={"ETag": svc.etag(settlement)})


@router.delete(
    "/groups/{group_id}/settlements/{settlement_id}",
    response_model=SettlementOut,
    responses=problems(400, 401, 404, 409, 412, 422, 503),
    summary="Void a settlement: post its reversal and set voided_at; repeating it returns the same body",
    description=(
        "Any member may void a settlement of the group, whatever the balances are now: its entries are "
        "reversed (kind `reversal`, citing the settlement). A second DELETE returns 200 with the same voided "
        "settlement and posts nothing. A settlement with someone who is no longer a member cannot be "
        "voided (409 settlement-not-voidable). `If-Match` (the settlement's `ETag`) and `Idempotency-Key` "
        "as for expenses."
    ),
)
async def delete_settlement(
    group_id: UUID,
    settlement_id: UUID,
    request: Request,
    user: CurrentUser,
    engine: EngineDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    claim = claim_for(request, user.id, idempotency_key, settings, b"")
    preconditions = parse_if_match(if_match)
    async with engine.connect() as conn:
        await group_for_member(conn, group_id, user.id)
    async with admitted(request, claim, group_id, request.app.state.settle_gate):
        outcome, settlement = await svc.void(
            request.app.state.write_pool,
            engine,
            settings,
            claim=claim,
            group_id=group_id,
            settlement_id=settlement_id,
            if_match=preconditions,
        )
    headers = {"ETag": svc.etag(settlement)}
    return outcome_response(outcome, orjson.dumps(svc.render(settlement)), svc.UPDATED, headers)
