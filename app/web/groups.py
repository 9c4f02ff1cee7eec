"""Home (your groups, each with your balance), a new group, the group page, members, guests, invites,
activity. Every read and write is a service of app.domain / app.ledger, as the API calls it."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app.api.pagination import PageParams, encode_time_cursor, require_time_cursor, scope_of
from app.core.errors import DomainError, invalid
from app.core.money import is_currency_code
from app.domain import activity, expenses, guests, settlements
from app.domain import groups as svc
from app.domain.schemas import GroupCreate, MemberAdd
from app.domain.users import UserRecord
from app.infra.tx import run_transaction
from app.ledger.postings import suggest_payments
from app.ledger.reads import read_nets, read_own_nets
from app.web.core import WebRoute, form_of, new_key, page, require_user, see_other, text_field
from app.web.messages import Errors, from_domain, from_pydantic, simple_field
from app.web.session import current_user
from app.web.views import GroupView

router = APIRouter(route_class=WebRoute, include_in_schema=False)

GROUPS_PAGE = 50
EXPENSES_PAGE = 20
SETTLEMENTS_SHOWN = 10
ACTIVITY_PAGE = 50
COMMON_CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "INR", "KWD", "SEK", "NOK", "DKK", "PLN")


def _cursor(request: Request) -> str | None:
    value = request.query_params.get("cursor")
    return value if value else None


@router.get("/", name="web_home")
async def home(request: Request) -> Response:
    user = await current_user(request)
    if user is None:
        return page(request, "landing.html")
    return await _home(request, user, values={"currency": "USD"}, errors={})


async def _home(request: Request, user: UserRecord, *, values: dict[str, str], errors: Errors,
                status: int = 200) -> Response:  # fmt: skip
    scope = scope_of("web-groups", user.id)
    after = require_time_cursor(PageParams(limit=GROUPS_PAGE, cursor=_cursor(request)), scope)
    async with request.app.state.engine.connect() as conn:
        rows = await svc.list_groups(conn, user.id, GROUPS_PAGE + 1, after)
        shown = rows[:GROUPS_PAGE]
        mine = await read_own_nets(conn, user.id, [g.id for g in shown])
    more = len(rows) > GROUPS_PAGE
    next_cursor = encode_time_cursor(scope, shown[-1].created_at, shown[-1].id) if more else None
    return page(
        request,
        "home.html",
        status=status,
        groups=[(g, mine.get(g.id, 0)) for g in shown],
        next_cursor=next_cursor,
        values=values,
        errors=errors,
        currencies=COMMON_CURRENCIES,
        welcome=request.query_params.get("welcome") == "1",
    )


@router.post("/groups")
async def create_group(request: Request) -> Response:
    user = await require_user(request)
    form = await form_of(request)
    values = {"name": text_field(form, "name", 200), "currency": text_field(form, "currency", 10).upper()}
    state = request.app.state
    try:
        body = GroupCreate.model_validate(values)
        if not is_currency_code(body.currency):
            raise invalid(("currency",), f"{body.currency} is not an ISO 4217 currency code")
        group = await run_transaction(
            state.engine, state.settings, lambda c: svc.create_group(c, body.name, body.currency, user.id)
        )
    except ValidationError as exc:
        return await _home(request, user, values=values, errors=from_pydantic(exc, simple_field), status=422)
    except DomainError as exc:
        return await _home(request, user, values=values, errors=from_domain(exc, simple_field), status=422)
    return see_other(f"/groups/{group.id}?done=group")


async def load_view(conn: AsyncConnection, group_id: uuid.UUID, user: UserRecord) -> GroupView:
    group = await svc.group_for_member(conn, group_id, user.id)
    members = await svc.list_members(conn, group_id)
    nets = await read_nets(conn, group_id)
    return GroupView(group=group, members=members, nets=nets, me=user.id)


@router.get("/groups/{group_id}", name="web_group")
async def group_page(request: Request, group_id: uuid.UUID) -> Response:
    user = await require_user(request)
    return await render_group(request, group_id, user)


async def render_group(request: Request, group_id: uuid.UUID, user: UserRecord, *, status: int = 200,
                       member_errors: Errors | None = None, member_values: dict[str, str] | None = None
                       ) -> Response:  # fmt: skip
    """The group page: balances (from the balance rows), suggested payments, the newest expenses (keyset
    pages of EXPENSES_PAGE), the latest payments and the members: O(members + page), whatever the history."""
    scope = scope_of("web-expenses", group_id)
    after = require_time_cursor(PageParams(limit=EXPENSES_PAGE, cursor=_cursor(request)), scope)
    async with request.app.state.engine.connect() as conn:
        view = await load_view(conn, group_id, user)
        rows = await expenses.list_page(conn, group_id, EXPENSES_PAGE + 1, after)
        paid = await settlements.list_page(conn, group_id, SETTLEMENTS_SHOWN, None) if after is None else []
    shown = rows[:EXPENSES_PAGE]
    more = len(rows) > EXPENSES_PAGE
    return page(
        request,
        "group.html",
        status=status,
        view=view,
        expenses=shown,
        settlements=paid,
        suggestions=suggest_payments(view.nets),
        next_cursor=encode_time_cursor(scope, shown[-1].created_at, shown[-1].id) if more else None,
        older=after is not None,
        done=request.query_params.get("done", ""),
        member_errors=member_errors or {},
        member_values=member_values or {},
        keys=[new_key() for _ in range(len(view.nets) + 1)],
    )


@router.post("/groups/{group_id}/members")
async def add_member(request: Request, group_id: uuid.UUID) -> Response:
    """By email (a registered person) or by name (a guest): the same services as POST .../members."""
    user = await require_user(request)
    form = await form_of(request)
    kind = text_field(form, "kind", 10)
    values = {"email": text_field(form, "email", 300)} if kind == "email" else {"name": text_field(form, "name", 200)}
    state = request.app.state
    try:
        body = MemberAdd.model_validate(values)

        async def work(conn: AsyncConnection) -> None:
            await svc.group_for_member(conn, group_id, user.id)
            limit = state.settings.max_group_members
            if body.name is not None:
                await guests.add_guest(conn, group_id=group_id, name=body.name, actor_id=user.id, max_members=limit)
            else:
                found = await svc.find_user_id(conn, None, body.email)
                await svc.add_member(conn, group_id=group_id, user_id=found, actor_id=user.id, max_members=limit)

        await run_transaction(state.engine, state.settings, work)
    except ValidationError as exc:
        errors = from_pydantic(exc, simple_field)
    except DomainError as exc:
        if exc.code == "not-found" and exc.detail == "user not found":
            errors = {"email": "No account has this email. Add the person as a guest by name instead."}
        elif exc.code == "not-found":
            raise
        else:
            errors = from_domain(exc, simple_field)
    else:
        return see_other(f"/groups/{group_id}?done=member#members")
    prefixed = {f"{kind}_{k}" if k in ("email", "name") else k: v for k, v in errors.items()}
    return await render_group(request, group_id, user, status=422, member_errors=prefixed, member_values=values)


@router.post("/groups/{group_id}/members/{user_id}/invite")
async def invite(request: Request, group_id: uuid.UUID, user_id: uuid.UUID) -> Response:
    user = await require_user(request)
    state = request.app.state

    async def work(conn: AsyncConnection) -> tuple[guests.Invite, GroupView]:
        await svc.group_for_member(conn, group_id, user.id)
        made = await guests.create_invite(conn, group_id=group_id, user_id=user_id, actor_id=user.id)
        return made, await load_view(conn, group_id, user)

    made, view = await run_transaction(state.engine, state.settings, work)
    link = str(request.url_for("web_claim")) + "?code=" + made.code
    return page(request, "invite.html", view=view, guest=view.name(user_id), link=link, expires_at=made.expires_at)


@router.get("/groups/{group_id}/activity", name="web_activity")
async def activity_page(request: Request, group_id: uuid.UUID) -> Response:
    user = await require_user(request)
    scope = scope_of("web-activity", group_id)
    after = require_time_cursor(PageParams(limit=ACTIVITY_PAGE, cursor=_cursor(request)), scope)
    async with request.app.state.engine.connect() as conn:
        view = await load_view(conn, group_id, user)
        rows = await activity.list_page(conn, group_id, ACTIVITY_PAGE + 1, after)
    shown = rows[:ACTIVITY_PAGE]
    more = len(rows) > ACTIVITY_PAGE
    items: list[dict[str, Any]] = [{"record": a, "text": view.describe(a)} for a in shown]
    return page(
        request,
        "activity.html",
        view=view,
        items=items,
        next_cursor=encode_time_cursor(scope, shown[-1].created_at, shown[-1].id) if more else None,
    )
