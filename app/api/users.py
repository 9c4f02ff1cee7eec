from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from app.api.deps import CurrentUser, EngineDep, SettingsDep
from app.api.jsonbody import StrictJsonRoute
from app.api.render import problems, respond
from app.domain.schemas import UserCreate, UserCreated, UserOut
from app.domain.users import create_user, render
from app.infra.tx import run_transaction

router = APIRouter(tags=["users"], route_class=StrictJsonRoute)


@router.post(
    "/users",
    status_code=201,
    response_model=UserCreated,
    responses=problems(409, 422),
    summary="Register a user; the api_token is shown only here",
    description=(
        "Public (no bearer token). Returns the user with its `api_token`, which is shown only in this response "
        "(it is stored hashed) and is used as `Authorization: Bearer <api_token>` on every other /v1 operation. "
        "Emails are unique case-insensitively: a duplicate is a 409."
    ),
)
async def post_user(body: UserCreate, engine: EngineDep, settings: SettingsDep) -> Response:
    user, token = await run_transaction(engine, settings, lambda conn: create_user(conn, body.name, body.email))
    return respond({**render(user), "api_token": token}, 201)


@router.get(
    "/users/me",
    response_model=UserOut,
    responses=problems(401),
    summary="The caller (the user the bearer token belongs to)",
)
async def get_me(user: CurrentUser) -> Response:
    return respond(render(user))
