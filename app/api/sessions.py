from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deps import AccountsDep
from app.api.render import created_at_location, problems, respond
from app.domain import accounts
from app.domain.account_schemas import SessionCreate, SessionCreated

router = APIRouter(tags=["users"])


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionCreated,
    responses={**problems(401, 409, 422, 429), **created_at_location("/v1/users/me/tokens/{token_id}")},
    summary="Log in with email and password: a new api_token",
    description=(
        "Public (no bearer token). The right email and password give a new token named \"session\" (listed and "
        "revoked like any other token; `Location` is its path under `/v1/users/me/tokens`). A wrong email and a "
        "wrong password get the very same 401 `invalid-credentials` after the same work (an account without a "
        "password is the same 401). Failed logins are counted per account and per client address (an IPv6 "
        "client by its /64) in PostgreSQL, shared by all workers: past the limits (by default 10 per account "
        "and 100 per address in 15 minutes) every login of that account or address gets 429 "
        "`too-many-attempts` with `Retry-After` until the window ends, even with the right password. A right "
        "password resets its account's count. A user keeps at most `max_tokens_per_user` live tokens; at the "
        'limit a login revokes the least recently used "session" token (409 `too-many-tokens` if there is none).'
    ),
)
async def post_session(body: SessionCreate, svc: AccountsDep, request: Request) -> Response:
    host = request.client.host if request.client else None
    token, api_token, evicted = await accounts.login(svc, email=body.email, password=body.password, host=host)
    for key in evicted:
        request.app.state.token_cache.discard(key)
    headers = {"Location": f"/v1/users/me/tokens/{token.id}"}
    return respond({"api_token": api_token, "token_id": str(token.id)}, 201, headers=headers)
