"""Add, preview, see, edit and void an expense: app.domain.expense_drafts and app.domain.expenses, as the
API calls them (the same claim, gate and If-Match), with the messages next to the fields."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from app.api.expenses import admitted, parse_if_match
from app.core.errors import DomainError
from app.domain import expenses
from app.domain.expense_drafts import ExpenseDraft
from app.domain.users import UserRecord
from app.web.core import WebRoute, form_of, new_key, page, require_user, see_other, text_field
from app.web.forms import ExpenseForm, blank, draft, field_of, from_form, prefill
from app.web.groups import load_view
from app.web.messages import FORM, Errors, from_domain
from app.web.views import GroupView
from app.web.writes import claim_for, waiting_for_first_click

router = APIRouter(route_class=WebRoute, include_in_schema=False)


async def _view(request: Request, group_id: uuid.UUID, user: UserRecord) -> GroupView:
    async with request.app.state.engine.connect() as conn:
        return await load_view(conn, group_id, user)


def _form_page(request: Request, view: GroupView, f: ExpenseForm, *, errors: Errors, preview: ExpenseDraft | None,
               expense_id: uuid.UUID | None = None, status: int = 200) -> Response:  # fmt: skip
    return page(
        request,
        "expense_form.html",
        status=status,
        view=view,
        form=f,
        errors=errors,
        preview=preview,
        expense_id=expense_id,
        today=dt.datetime.now(dt.UTC).date().isoformat(),
    )


@router.get("/groups/{group_id}/expenses/new", name="web_new_expense")
async def new_expense(request: Request, group_id: uuid.UUID) -> Response:
    user = await require_user(request)
    view = await _view(request, group_id, user)
    f = blank(view.members_by_name(), currency=view.currency, payer=user.id, idem=new_key())
    return _form_page(request, view, f, errors={}, preview=None)


@router.post("/groups/{group_id}/expenses/preview")
async def preview(request: Request, group_id: uuid.UUID) -> Response:
    """The split as the services compute it, for htmx to show while the person types (saves nothing)."""
    user = await require_user(request)
    view = await _view(request, group_id, user)
    f = from_form(await form_of(request), view.members_by_name(), view.currency)
    _, d, errors = draft(f, view.currency)
    return page(request, "_preview.html", view=view, preview=d, errors=errors, form=f)


@router.post("/groups/{group_id}/expenses")
async def create_expense(request: Request, group_id: uuid.UUID) -> Response:
    user = await require_user(request)
    view = await _view(request, group_id, user)
    form = await form_of(request)
    f = from_form(form, view.members_by_name(), view.currency)
    model, d, errors = draft(f, view.currency)
    if errors or model is None or d is None or text_field(form, "action") == "preview":
        return _form_page(request, view, f, errors=errors, preview=d, status=422 if errors else 200)
    claim = claim_for(request, user.id, f.idem, model.model_dump(mode="json", exclude_none=True))
    state = request.app.state

    async def write() -> Any:
        async with admitted(request, claim, group_id, state.group_gate):
            return await expenses.create(
                state.write_pool, state.settings, claim=claim, group_id=group_id, group_currency=view.currency, draft=d
            )

    try:
        outcome, rendered = await waiting_for_first_click(write)
    except DomainError as exc:
        if exc.code == "not-found":
            raise
        status = 409 if exc.code.startswith("idempotency") else 422
        return _form_page(request, view, f, errors=from_domain(exc, field_of(f)), preview=d, status=status)
    body = outcome.body if outcome.replayed and outcome.body else rendered
    expense_id = orjson.loads(body)["id"]
    return see_other(f"/groups/{group_id}?done=expense&id={expense_id}#expenses")


@router.get("/groups/{group_id}/expenses/{expense_id}", name="web_expense")
async def expense_page(request: Request, group_id: uuid.UUID, expense_id: uuid.UUID) -> Response:
    user = await require_user(request)
    return await _detail(request, group_id, expense_id, user)


async def _detail(request: Request, group_id: uuid.UUID, expense_id: uuid.UUID, user: UserRecord, *,
                  message: str = "", status: int = 200) -> Response:  # fmt: skip
    async with request.app.state.engine.connect() as conn:
        view = await load_view(conn, group_id, user)
        record = await expenses.get(conn, group_id, expense_id)
        history = await expenses.versions(conn, group_id, expense_id)
    return page(
        request,
        "expense.html",
        status=status,
        view=view,
        e=record,
        etag=expenses.etag(record),
        history=history,
        message=message,
        done=request.query_params.get("done", ""),
        void_key=new_key(),
    )


@router.get("/groups/{group_id}/expenses/{expense_id}/edit", name="web_edit_expense")
async def edit_page(request: Request, group_id: uuid.UUID, expense_id: uuid.UUID) -> Response:
    user = await require_user(request)
    async with request.app.state.engine.connect() as conn:
        view = await load_view(conn, group_id, user)
        record = await expenses.get(conn, group_id, expense_id)
    f = prefill(record, view.members_by_name(), idem=new_key(), if_match=expenses.etag(record))
    return _form_page(request, view, f, errors={}, preview=draft(f, view.currency)[1], expense_id=expense_id)


@router.post("/groups/{group_id}/expenses/{expense_id}")
async def edit_expense(request: Request, group_id: uuid.UUID, expense_id: uuid.UUID) -> Response:
    """If-Match from the form's hidden field: an edit based on an older version is refused (412 in the API)
    and the person is shown the newer version instead."""
    user = await require_user(request)
    view = await _view(request, group_id, user)
    form = await form_of(request)
    f = from_form(form, view.members_by_name(), view.currency)
    model, d, errors = draft(f, view.currency)
    if errors or model is None or d is None or text_field(form, "action") == "preview":
        status = 422 if errors else 200
        return _form_page(request, view, f, errors=errors, preview=d, expense_id=expense_id, status=status)
    claim = claim_for(request, user.id, f.idem, model.model_dump(mode="json", exclude_none=True))
    state = request.app.state

    async def write() -> Any:
        async with admitted(request, claim, group_id, state.settle_gate):
            return await expenses.update(
                state.write_pool, state.engine, state.settings, claim=claim, group_id=group_id,
                expense_id=expense_id, draft=d, if_match=parse_if_match(f.if_match or None),
            )  # fmt: skip

    try:
        await waiting_for_first_click(write)
    except DomainError as exc:
        if exc.code == "not-found":
            raise
        if exc.code != "precondition-failed":
            return _form_page(request, view, f, errors=from_domain(exc, field_of(f)), preview=d,
                              expense_id=expense_id, status=409)  # fmt: skip
        return await _newer_version(request, view, group_id, expense_id, f)
    return see_other(f"/groups/{group_id}/expenses/{expense_id}?done=saved")


async def _newer_version(request: Request, view: GroupView, group_id: uuid.UUID, expense_id: uuid.UUID,
                         mine: ExpenseForm) -> Response:  # fmt: skip
    async with request.app.state.engine.connect() as conn:
        current = await expenses.get(conn, group_id, expense_id)
    f = prefill(current, view.members_by_name(), idem=new_key(), if_match=expenses.etag(current))
    who = view.name(current.updated_by)
    errors = {
        FORM: f"{who} changed this expense while you were editing it (it is now version {current.version}). "
        f"Your changes were not saved: the form shows the newer version. Yours was: "
        f"“{mine.description}”, {mine.amount} {mine.currency}."
    }
    preview = draft(f, view.currency)[1]
    return _form_page(request, view, f, errors=errors, preview=preview, expense_id=expense_id, status=409)


@router.post("/groups/{group_id}/expenses/{expense_id}/void")
async def void_expense(request: Request, group_id: uuid.UUID, expense_id: uuid.UUID) -> Response:
    user = await require_user(request)
    form = await form_of(request)
    state = request.app.state
    async with state.engine.connect() as conn:
        await load_view(conn, group_id, user)  # 404 unless a member
    claim = claim_for(request, user.id, text_field(form, "idem", 300), {"void": str(expense_id)})
    if_match = parse_if_match(text_field(form, "if_match", 100) or None)

    async def write() -> Any:
        async with admitted(request, claim, group_id, state.settle_gate):
            return await expenses.void(
                state.write_pool, state.engine, state.settings, claim=claim, group_id=group_id,
                expense_id=expense_id, if_match=if_match,
            )  # fmt: skip

    try:
        await waiting_for_first_click(write)
    except DomainError as exc:
        if exc.code == "not-found":
            raise
        message = from_domain(exc, lambda _: FORM)[FORM]
        if exc.code == "precondition-failed":
            message = "Someone changed this expense meanwhile, so it was not voided. Here is the newer version."
        return await _detail(request, group_id, expense_id, user, message=message, status=409)
    return see_other(f"/groups/{group_id}/expenses/{expense_id}?done=voided")
