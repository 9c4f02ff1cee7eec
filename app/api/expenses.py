from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated
from uuid import UUID

import orjson
from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response

from app.api.deps import CurrentUser, EngineDep, SettingsDep, not_found_unless_member, writable_currency
from app.api.jsonbody import StrictJsonRoute
from app.api.pagination import PageDep, require_time_cursor, scope_of
from app.api.render import problems, raw_json, respond, time_page
from app.core.errors import DomainError, FieldError
from app.domain import expenses as svc
from app.domain.expense_drafts import draft_expense
from app.domain.groups import group_for_member
from app.domain.idempotency import HEADER as IDEMPOTENCY_HEADER
from app.domain.idempotency import REPLAYED_HEADER, fingerprint, parse_key
from app.domain.schemas import ExpenseIn, ExpenseOut, Page, Versions
from app.infra import metrics
from app.infra.config import Settings
from app.infra.gate import GroupGate
from app.infra.logs import current_route
from app.infra.testhooks import faults_for
from app.ledger.commands import Claim, Outcome

router = APIRouter(tags=["expenses"], route_class=StrictJsonRoute)

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description=(
            "1..255 printable ASCII characters (also as an RFC 8941 quoted string), scoped to the caller. "
            "Same key and same request: the original response is replayed with `Idempotent-Replayed: true`. "
            "Same key, different request: 422 idempotency-key-reused. In progress elsewhere: 409 "
            "idempotency-key-in-use. Anything else, the empty key included: 400. Kept at least 24 hours."
        ),
    ),
]


MAX_ETAG_LENGTH = 64
IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=1_000,
        description=(
            "Optional. The `ETag` of the version the edit or void is based on (or `*`). If the expense has "
            "changed since (another edit or a void), 412 precondition-failed and nothing is written."
        ),
    ),
]


def claim_for(request: Request, user_id: UUID, raw_key: str | None, settings: Settings, body: bytes) -> Claim:
    """Parse the Idempotency-Key (400 if malformed, or sent more than once) and fingerprint the request it
    guards: method, path with canonical UUIDs (any spelling of an id is the same request), canonical body."""
    if raw_key is not None and len(request.headers.getlist(IDEMPOTENCY_HEADER)) > 1:
        raise DomainError("invalid-idempotency-key", "send one Idempotency-Key header, not several")
    key = parse_key(raw_key)
    if key is None:
        return Claim(user_id=user_id, key=None, fingerprint=b"", ttl_hours=settings.idempotency_ttl_hours)
    path = request.app.state.route_table.canonical_path(request.scope)
    fp = fingerprint(request.method, path, body)
    return Claim(user_id=user_id, key=key, fingerprint=fp, ttl_hours=settings.idempotency_ttl_hours)


@asynccontextmanager
async def admitted(request: Request, claim: Claim, group_id: UUID, gate: GroupGate) -> AsyncIterator[None]:
    """A write's way in: its key is not already being written by this worker (else 409 at once),
    and at most the gate's width of writes per group from this worker are at the database."""
    state = request.app.state
    with state.keys_in_flight.hold(claim.user_id, claim.key):
        async with gate.enter(group_id, state.settings.lock_timeout_ms / 1000):
            yield


def outcome_response(
    outcome: Outcome | None, rendered: bytes, status_code: int, headers: dict[str, str] | None = None
) -> Response:
    """The stored response for a replay, else the one the service rendered before writing."""
    if outcome is not None and outcome.replayed:
        assert outcome.status is not None and outcome.body is not None
        metrics.count_replay(current_route())
        return raw_json(outcome.body, outcome.status, {**(headers or {}), REPLAYED_HEADER: "true"})
    return raw_json(rendered, status_code, headers)


def parse_if_match(raw: str | None) -> frozenset[str] | None:
    """If-Match: None when absent; else its entity tags (or "*"). A weak tag never matches (RFC 9110)."""
    if raw is None:
        return None
    tags = frozenset(t.strip() for t in raw.split(",") if t.strip())
    if not tags or any(len(t) > MAX_ETAG_LENGTH for t in tags):
        raise invalid_header("If-Match must list entity tags, or be *")
    return tags


def invalid_header(detail: str) -> DomainError:
    return DomainError("invalid-header", detail)


def _expense_headers(expense: svc.ExpenseRecord) -> dict[str, str]:
    return {"ETag": svc.etag(expense)}


def created_headers(group_id: UUID, body: bytes, kind: str) -> dict[str, str]:
    """Location (and, for an expense, ETag: a new expense is version 1) of a created resource."""
    resource_id = orjson.loads(body)["id"]
    headers = {"Location": f"/v1/groups/{group_id}/{kind}/{resource_id}"}
    if kind == "expenses":
        headers["ETag"] = '"1"'
    return headers


@router.post(
    "/groups/{group_id}/expenses",
    status_code=201,
    response_model=ExpenseOut,
    responses=problems(400, 401, 404, 409, 422, 503),
    summary="Create an expense (idempotent with Idempotency-Key)",
    description=(
        "Any member may record an expense. `paid_by` and every participant must be current members (422 "
        "otherwise); the payer need not participate. Splits: `equal` (leftover minor units to the first "
        "participants by ascending user_id), `percentage` (at most 4 decimals, summing to exactly 100), `exact` "
        "(amounts summing to exactly `amount`), `shares` (positive integers); percentage and shares use the "
        "largest-remainder method, ties by ascending user_id. An invalid payload is a 422 before anything is "
        "written. The expense and its ledger entries are one transaction."
    ),
)
async def post_expense(
    group_id: UUID,
    body: ExpenseIn,
    request: Request,
    user: CurrentUser,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    # Read from app.state, not injected: each dependency costs the hot path a resolution step.
    engine, settings = request.app.state.engine, request.app.state.settings
    claim = claim_for(request, user.id, idempotency_key, settings, await request.body())
    currency = await writable_currency(request, engine, group_id, user)
    try:
        draft = draft_expense(body, currency)
    except DomainError:
        await not_found_unless_member(engine, group_id, user.id)
        raise
    async with admitted(request, claim, group_id, request.app.state.group_gate):
        outcome, rendered = await svc.create(
            request.app.state.write_pool,
            settings,
            claim=claim,
            group_id=group_id,
            group_currency=currency,
            draft=draft,
            faults=faults_for(request, settings),
        )
    return outcome_response(outcome, rendered, svc.CREATED, created_headers(group_id, rendered, "expenses"))


@router.get(
    "/groups/{group_id}/expenses",
    response_model=Page[ExpenseOut],
    responses=problems(400, 401, 404, 422),
    summary="List expenses, newest first (voided ones included)",
    description="Keyset-paginated on (created_at, id), newest first; voided expenses are listed with `voided_at`.",
)
async def list_expenses(
    group_id: UUID,
    user: CurrentUser,
    engine: EngineDep,
    page: PageDep,
    since: Annotated[
        str | None, Query(max_length=10, description="Only expenses dated on or after (YYYY-MM-DD).")
    ] = None,
    until: Annotated[
        str | None, Query(max_length=10, description="Only expenses dated on or before (YYYY-MM-DD).")
    ] = None,
    category: Annotated[str | None, Query(min_length=1, max_length=50, description="Only this category.")] = None,
) -> Response:
    where = svc.ExpenseFilter(since=_query_date("since", since), until=_query_date("until", until), category=category)
    scope = scope_of("expenses", group_id, where.since, where.until, where.category)
    after = require_time_cursor(page, scope)
    async with engine.connect() as conn:
        await group_for_member(conn, group_id, user.id)
        rows = await svc.list_page(conn, group_id, page.limit + 1, after, where)
    return time_page(rows, page.limit, svc.render, scope)


def _query_date(name: str, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        msg = "must be a date YYYY-MM-DD"
        raise DomainError(
            "validation-error", f"{name} {msg}", fields=[FieldError((name,), msg, where="query")]
        ) from None


@router.get(
    "/groups/{group_id}/expenses/{expense_id}/versions",
    response_model=Versions,
    responses=problems(401, 404, 422),
    summary="Every version of an expense, oldest first, each as it was (who changed it and when)",
    description=(
        "Versions are stored when they are replaced and never rewritten; the last item is the current "
        "version (with `voided_at` once voided). A void does not make a new version."
    ),
)
async def get_expense_versions(group_id: UUID, expense_id: UUID, user: CurrentUser, engine: EngineDep) -> Response:
    async with engine.connect() as conn:
        await group_for_member(conn, group_id, user.id)
        return respond({"items": await svc.versions(conn, group_id, expense_id)})


@router.get(
    "/groups/{group_id}/expenses/{expense_id}",
    response_model=ExpenseOut,
    responses=problems(401, 404, 422),
    summary="One expense (current version; voided ones too)",
)
async def get_expense(group_id: UUID, expense_id: UUID, user: CurrentUser, engine: EngineDep) -> Response:
    async with engine.connect() as conn:
        await group_for_member(conn, group_id, user.id)
        expense = await svc.get(conn, group_id, expense_id)
    return respond(svc.render(expense), headers=_expense_headers(expense))


@router.put(
    "/groups/{group_id}/expenses/{expense_id}",
    response_model=ExpenseOut,
    responses=problems(400, 401, 404, 409, 412, 422, 503),
    summary="Edit: reverse the current entries and post the new ones in one transaction; version + 1",
    description=(
        "Same body and rules as create. Any member may edit any expense of the group. Editing a voided expense, "
        "or one whose payer or participants include someone no longer a member, is a 409. The previous "
        "version's ledger entries are reversed (kind `reversal`) and the new ones posted in one transaction."
    ),
)
async def put_expense(
    group_id: UUID,
    expense_id: UUID,
    body: ExpenseIn,
    request: Request,
    user: CurrentUser,
    engine: EngineDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
    if_match: IfMatchHeader = None,
) -> Response:
    claim = claim_for(request, user.id, idempotency_key, settings, await request.body())
    preconditions = parse_if_match(if_match)
    async with engine.connect() as conn:
        group = await group_for_member(conn, group_id, user.id)
    draft = draft_expense(body, group.currency)
    async with admitted(request, claim, group_id, request.app.state.settle_gate):
        outcome, expense = await svc.update(
            request.app.state.write_pool,
            engine,
            settings,
            claim=claim,
            group_id=group_id,
            expense_id=expense_id,
            draft=draft,
            if_match=preconditions,
        )
    return outcome_response(outcome, orjson.dumps(svc.render(expense)), svc.UPDATED, _expense_headers(expense))


@router.delete(
    "/groups/{group_id}/expenses/{expense_id}",
    response_model=ExpenseOut,
    responses=problems(400, 401, 404, 409, 412, 422, 503),
    summary="Void: post reversal entries and set voided_at; repeating it returns the same body and posts nothing",
    description=(
        "Any member may void any expense of the group. Voiding posts the exact negation of the expense's "
        "current entries and sets `voided_at`. A second DELETE is not an error: it returns 200 with the same "
        "voided expense and posts nothing. Voiding an expense whose payer or participants include someone no "
        "longer a member is a 409."
    ),
)
async def delete_expense(
    group_id: UUID,
    expense_id: UUID,
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
        outcome, expense = await svc.void(
            request.app.state.write_pool,
            engine,
            settings,
            claim=claim,
            group_id=group_id,
            expense_id=expense_id,
            if_match=preconditions,
        )
    return outcome_response(outcome, orjson.dumps(svc.render(expense)), svc.UPDATED, _expense_headers(expense))
