from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deps import CurrentUser, EngineDep, SettingsDep
from app.api.render import created_at_location, problems, respond
from app.domain import tokens as svc
from app.domain.account_schemas import TokenCreate, TokenCreated, TokenOut
from app.infra.tx import run_transaction

router = APIRouter(tags=["users"])


@router.get(
    "/users/me/tokens",
    response_model=list[TokenOut],
    responses=problems(401),
    summary="The caller's live API tokens, newest first (never the tokens themselves)",
    description=(
        "Every token that is not revoked: the one from registration (\"registration\"), one per password login "
        "(\"session\") and those created here. `last_used_at` is kept to within a minute (it is written at most "
        "once a minute per token, not on every request). At most `max_tokens_per_user` (100) items."
    ),
)
async def list_tokens(user: CurrentUser, engine: EngineDep) -> Response:
    async with engine.connect() as conn:
        rows = await svc.list_tokens(conn, user.id)
    return respond([svc.render(t) for t in rows])


@router.post(
    "/users/me/tokens",
    status_code=201,
    response_model=TokenCreated,
    responses={**problems(401, 409, 422), **created_at_location("/v1/users/me/tokens/{id}")},
    summary="Create a named API token; the api_token is shown only here",
    description=(
        "Names need not be unique. A user keeps at most `max_tokens_per_user` (100) live tokens: beyond, "
        "409 `too-many-tokens` (revoke one first)."
    ),
)
async def post_token(body: TokenCreate, user: CurrentUser, engine: EngineDep, settings: SettingsDep) -> Response:
    token, api_token, _ = await run_transaction(
        engine,
        settings,
        lambda c: svc.create_token(c, user_id=user.id, name=body.name, limit=settings.max_tokens_per_user),
    )
    body_out = {**svc.render(token), "api_token": api_token}
    del body_out["last_used_at"]
    return respond(body_out, 201, headers={"Location": f"/v1/users/me/tokens/{token.id}"})


@router.delete(
    "/users/me/tokens/{token_id}",
    status_code=204,
    responses=problems(401, 404, 422),
    summary="Revoke one of the caller's tokens",
    description=(
        "The token is refused from now on by every worker: the revocation is announced to them (PostgreSQL "
        "NOTIFY) as it commits; a worker that has lost that channel caches tokens for at most `token_cache_ttl_ms` "
        "(500 ms by default, never more than 1 s). Revoking the token of the request itself is allowed. "
        "Another user's token, an unknown id or a token already revoked: 404 `not-found`, nothing written."
    ),
)
async def delete_token(
    token_id: UUID, user: CurrentUser, engine: EngineDep, settings: SettingsDep, request: Request
) -> Response:
    key = await run_transaction(engine, settings, lambda c: svc.revoke_token(c, user_id=user.id, token_id=token_id))
    request.app.state.token_cache.discard(key)
    return Response(status_code=204)
