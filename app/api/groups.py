from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response

from app.api.deps import CurrentUser, EngineDep, SettingsDep
from app.api.jsonbody import StrictJsonRoute
from app.api.pagination import PageDep, require_time_cursor, scope_of
from app.api.render import problems, respond, time_page
from app.core.errors import invalid
from app.core.money import is_currency_code
from app.core.records import rfc3339
from app.domain import activity, guests
from app.domain import groups as svc
from app.domain.schemas import (
    ActivityOut,
    GroupCreate,
    GroupDetail,
    GroupOut,
    InviteOut,
    MemberAdd,
    MemberOut,
    MembersOut,
    Page,
)
from app.infra.tx import run_transaction

router = APIRouter(tags=["groups"], route_class=StrictJsonRoute)


@router.post(
    "/groups",
    status_code=201,
    response_model=GroupOut,
    responses=problems(401, 422),
    summary="Create a group; the caller is its first member",
    description="`currency` is an active ISO 4217 code (e.g. USD, JPY, KWD); every amount in the group uses it.",
)
async def post_group(body: GroupCreate, user: CurrentUser, engine: EngineDep, settings: SettingsDep) -> Response:
    if not is_currency_code(body.currency):
        raise invalid(("currency",), f"{body.currency} is not an ISO 4217 currency code")
    group = await run_transaction(engine, settings, lambda c: svc.create_group(c, body.name, body.currency, user.id))
    return respond(svc.render(group), 201, {"Location": f"/v1/groups/{group.id}"})


@router.get(
    "/groups",
    response_model=Page[GroupOut],
    responses=problems(400, 401, 422),
    summary="The caller's groups, newest first (keyset-paginated)",
)
async def get_groups(user: CurrentUser, engine: EngineDep, page: PageDep) -> Response:
    async with engine.connect() as conn:
        scope = scope_of("groups", user.id)
        rows = await svc.list_groups(conn, user.id, page.limit + 1, require_time_cursor(page, scope))
    return time_page(rows, page.limit, svc.render, scope)


async def _detail(conn: AsyncConnection, group: svc.GroupRecord) -> dict[str, object]:
    members = await svc.list_members(conn, group.id)
    return {**svc.render(group), "members": [svc.render_member(m) for m in members]}


@router.get(
    "/groups/{group_id}",
    response_model=GroupDetail,
    responses=problems(401, 404, 422),
    summary="A group with its current members",
    description="A group the caller is not a member of does not exist for them: 404.",
)
async def get_group(group_id: UUID, user: CurrentUser, engine: EngineDep) -> Response:
    async with engine.connect() as conn:
        group = await svc.group_for_member(conn, group_id, user.id)
        return respond(await _detail(conn, group))


@router.post(
    "/groups/{group_id}/members",
    status_code=201,
    response_model=MembersOut,
    responses=problems(401, 404, 409, 422),
    summary="Add a registered user (by user_id or email) or a guest (by name); returns the member list",
    description=(
        "Any member may add members. Give exactly one of `user_id`, `email` (case-insensitive) or `name`: a name "
        "alone adds a **guest**, a person without an account who takes part in expenses and settlements like "
        "anyone; `POST .../members/{user_id}/invite` lets them claim the place later."
    ),
)
async def post_member(
    group_id: UUID, body: MemberAdd, user: CurrentUser, engine: EngineDep, settings: SettingsDep
) -> Response:
    if sum(v is not None for v in (body.user_id, body.email, body.name)) != 1:
        raise invalid((), "give exactly one of user_id, email or name (a guest)")

    async def work(conn: AsyncConnection) -> list[svc.MemberRecord]:
        await svc.group_for_member(conn, group_id, user.id)
        limit = settings.max_group_members
        if body.name is not None:
            await guests.add_guest(conn, group_id=group_id, name=body.name, actor_id=user.id, max_members=limit)
        else:
            new_id = await svc.find_user_id(conn, body.user_id, body.email)
            await svc.add_member(conn, group_id=group_id, user_id=new_id, actor_id=user.id, max_members=limit)
        return await svc.list_members(conn, group_id)

    members = await run_transaction(engine, settings, work)
    return respond(
        {"members": [svc.render_member(m) for m in members]}, 201, {"Location": f"/v1/groups/{group_id}/members"}
    )


@router.delete(
    "/groups/{group_id}/members/{user_id}",
    status_code=204,
    responses=problems(401, 404, 409, 422),
    summary="Remove a member whose net balance is zero",
    description=(
        "Any member may remove any member (themselves included) whose net balance is exactly zero; otherwise 409. "
        "Expenses that involve a removed member can no longer be edited or voided (409)."
    ),
)
async def delete_member(
    group_id: UUID, user_id: UUID, request: Request, user: CurrentUser, settings: SettingsDep
) -> Response:
    await svc.remove_member(request.app.state.write_pool, settings, caller=user.id, group_id=group_id, user_id=user_id)
    return Response(status_code=204)


@router.get(
    "/groups/{group_id}/members",
    response_model=list[MemberOut],
    responses=problems(401, 404, 422),
    summary="The group's current members",
    description="`email` is null and `guest` true for a guest member (a person without an account).",
)
async def get_members(group_id: UUID, user: CurrentUser, engine: EngineDep) -> Response:
    async with engine.connect() as conn:
        await svc.group_for_member(conn, group_id, user.id)
        members = await svc.list_members(conn, group_id)
    return respond([svc.render_member(m) for m in members])


@router.get(
    "/groups/{group_id}/activity",
    response_model=Page[ActivityOut],
    responses=problems(400, 401, 404, 422),
    summary="Who did what and when in the group, newest first (keyset-paginated)",
    description=(
        "Types: expense.created, expense.updated, expense.voided, settlement.created, settlement.voided, "
        "member.added, member.removed, member.claimed, recurring.created, recurring.updated, recurring.stopped. "
        "Items are never changed or removed. Activity before this feature was recorded was backfilled from the "
        "expenses, settlements and memberships, with the creator as the actor and `detail.backfilled` true."
    ),
)
async def get_activity(group_id: UUID, user: CurrentUser, engine: EngineDep, page: PageDep) -> Response:
    scope = scope_of("activity", group_id)
    after = require_time_cursor(page, scope)
    async with engine.connect() as conn:
        await svc.group_for_member(conn, group_id, user.id)
        rows = await activity.list_page(conn, group_id, page.limit + 1, after)
    return time_page(rows, page.limit, activity.render, scope)


@router.post(
    "/groups/{group_id}/members/{user_id}/invite",
    status_code=201,
    response_model=InviteOut,
    responses=problems(401, 404, 409, 422),
    summary="An invite code for a guest member to claim their place (single use, 7 days)",
    description=(
        "Any member may invite a guest. The code is shown only here; `POST /v1/users/claim` turns the guest into a "
        "full user with the same id and history. A member who is not a guest: 409 not-a-guest."
    ),
)
async def post_invite(
    group_id: UUID, user_id: UUID, user: CurrentUser, engine: EngineDep, settings: SettingsDep
) -> Response:
    async def work(conn: AsyncConnection) -> guests.Invite:
        await svc.group_for_member(conn, group_id, user.id)
        return await guests.create_invite(conn, group_id=group_id, user_id=user_id, actor_id=user.id)

    invite = await run_transaction(engine, settings, work)
    body = {"invite_code": invite.code, "expires_at": rfc3339(invite.expires_at)}
    return respond(body, 201, {"Location": f"/v1/groups/{group_id}/members"})
