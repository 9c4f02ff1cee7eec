from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deps import AccountsDep, CurrentUser
from app.api.jsonbody import StrictJsonRoute
from app.api.render import problems, respond
from app.domain import accounts, guests
from app.domain.account_schemas import PasswordChange
from app.domain.schemas import ClaimIn, UserCreate, UserCreated, UserOut
from app.domain.users import render

router = APIRouter(tags=["users"], route_class=StrictJsonRoute)


@router.post(
    "/users",
    status_code=201,
    response_model=UserCreated,
    responses=problems(409, 422),
    summary="Register a user; the api_token is shown only here",
    description=(
        "Public (no bearer token). Returns the user with its `api_token`, which is shown only in this response "
        "(it is stored hashed) and is used as `Authorization: Bearer <api_token>` on every other /v1 operation; "
        'it is the user\'s first named token, "registration" (see `GET /v1/users/me/tokens`). '
        "Emails are unique case-insensitively: a duplicate is a 409. An optional `password` (8..128 characters, "
        "not a weak one) lets the user log in with `POST /v1/sessions`; it is stored as an Argon2id hash."
    ),
)
async def post_user(body: UserCreate, svc: AccountsDep) -> Response:
    user, token = await accounts.register(svc, name=body.name, email=body.email, password=body.password)
    return respond({**render(user), "api_token": token}, 201, {"Location": "/v1/users/me"})


@router.post(
    "/users/claim",
    status_code=201,
    response_model=UserCreated,
    responses=problems(409, 422),
    summary="A guest's person claims their place with an invite code: the guest becomes a full user",
    description=(
        "Public (no bearer token). The guest keeps their id, memberships, balances and history; the response is "
        "as for `POST /v1/users`, with an `api_token`. A code that is unknown, used or expired (or whose guest was "
        "already claimed): 422 invalid-invite. An email already taken: 409 email-taken. Nothing is written then."
    ),
)
async def post_claim(body: ClaimIn, svc: AccountsDep) -> Response:
    user, token = await guests.claim(
        svc, code=body.invite_code, email=body.email, name=body.name, password=body.password
    )
    return respond({**render(user), "api_token": token}, 201, {"Location": "/v1/users/me"})


@router.get(
    "/users/me",
    response_model=UserOut,
    responses=problems(401),
    summary="The caller (the user the bearer token belongs to)",
)
async def get_me(user: CurrentUser) -> Response:
    return respond(render(user))


@router.put(
    "/users/me/password",
    status_code=204,
    responses=problems(401, 403, 409, 422, 429),
    summary="Set or change the caller's password",
    description=(
        "`current_password` is required when the account already has a password (422 without it) and must be "
        "right: a wrong one is a 403 `invalid-current-password` (not a 401: the bearer token is fine) and "
        "counts as a failed login, so repeated wrong ones get 429 `too-many-attempts` with `Retry-After`. "
        "An account without a password may set one with its bearer token alone. `new_password` follows the "
        "rules of registration. Existing tokens stay valid (revoke them with `DELETE /v1/users/me/tokens/{token_id}`)."
    ),
)
async def put_password(body: PasswordChange, user: CurrentUser, svc: AccountsDep, request: Request) -> Response:
    host = request.client.host if request.client else None
    await accounts.change_password(svc, user=user, current=body.current_password, new=body.new_password, host=host)
    return Response(status_code=204)
