"""Settle up: the suggested payments (app.ledger.postings.suggest_payments over the balance rows), a payment
recorded with one click from a suggestion or typed in, and a payment voided: app.domain.settlements."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from app.api.expenses import admitted
from app.core.errors import DomainError
from app.domain import settlements
from app.domain.schemas import SettlementIn
from app.domain.users import UserRecord
from app.ledger.postings import suggest_payments
from app.web.core import WebRoute, form_of, new_key, page, require_user, see_other, text_field
from app.web.groups import load_view
from app.web.messages import FORM, Errors, from_domain, from_pydantic, simple_field
from app.web.writes import claim_for, waiting_for_first_click

router = APIRouter(route_class=WebRoute, include_in_schema=False)
_FIELDS = ("from_user_id", "to_user_id", "amount", "note")


async def _settle_page(request: Request, group_id: uuid.UUID, user: UserRecord, *, values: dict[str, str],
                       errors: Errors, key: str, status: int = 200) -> Response:  # fmt: skip
    async with request.app.state.engine.connect() as conn:
        view = await load_view(conn, group_id, user)
    suggestions = suggest_payments(view.nets)
    return page(
        request,
        "settle.html",
        status=status,
        view=view,
        suggestions=suggestions,
        keys=[new_key() for _ in suggestions],
        values=values,
        errors=errors,
        key=key,
    )


@router.get("/groups/{group_id}/settle", name="web_settle")
async def settle_page(request: Request, group_id: uuid.UUID) -> Response:
    user = await require_user(request)
    values = {k: request.query_params.get(k, "")[:100] for k in _FIELDS}
    values["from_user_id"] = values["from_user_id"] or str(user.id)
    return await _settle_page(request, group_id, user, values=values, errors={}, key=new_key())


@router.post("/groups/{group_id}/settlements")
async def record_payment(request: Request, group_id: uuid.UUID) -> Response:
    user = await require_user(request)
    form = await form_of(request)
    values = {k: text_field(form, k, 600) for k in _FIELDS}
    key = text_field(form, "idem", 300)
    state = request.app.state
    async with state.engine.connect() as conn:
        view = await load_view(conn, group_id, user)
    try:
        body = SettlementIn.model_validate({**values, "note": values["note"] or None})
    except ValidationError as exc:
        errors = from_pydantic(exc, simple_field)
        return await _settle_page(request, group_id, user, values=values, errors=errors, key=key, status=422)
    claim = claim_for(request, user.id, key, body.model_dump(mode="json", exclude_none=True))

    async def write() -> Any:
        amount_minor = settlements.parse_settlement_amount(body, view.currency)
        async with admitted(request, claim, group_id, state.settle_gate):
            return await settlements.create(
                state.write_pool, state.settings, claim=claim, group_id=group_id, currency=view.currency,
                body=body, amount_minor=amount_minor,
            )  # fmt: skip

    try:
        await waiting_for_first_click(write)
    except DomainError as exc:
        if exc.code == "not-found":
            raise
        errors = from_domain(exc, simple_field)
        if exc.code == "settlement-exceeds-balance" and "amount" in errors:
            errors["amount"] = "That is more than one of them owes or is owed. " + errors["amount"]
        return await _settle_page(request, group_id, user, values=values, errors=errors, key=key, status=422)
    return see_other(f"/groups/{group_id}?done=payment#balances")


@router.post("/groups/{group_id}/settlements/{settlement_id}/void")
async def void_payment(request: Request, group_id: uuid.UUID, settlement_id: uuid.UUID) -> Response:
    user = await require_user(request)
    form = await form_of(request)
    state = request.app.state
    async with state.engine.connect() as conn:
        await load_view(conn, group_id, user)
    claim = claim_for(request, user.id, text_field(form, "idem", 300), {"void": str(settlement_id)})

    async def write() -> Any:
        async with admitted(request, claim, group_id, state.settle_gate):
            return await settlements.void(
                state.write_pool, state.engine, state.settings, claim=claim, group_id=group_id,
                settlement_id=settlement_id,
            )  # fmt: skip

    try:
        await waiting_for_first_click(write)
    except DomainError as exc:
        if exc.code == "not-found":
            raise
        values = {k: "" for k in _FIELDS}
        errors = {FORM: from_domain(exc, lambda _: FORM)[FORM]}
        return await _settle_page(request, group_id, user, values=values, errors=errors, key=new_key(), status=409)
    return see_other(f"/groups/{group_id}?done=payment-voided#payments")
