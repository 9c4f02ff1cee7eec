"""Sign up, sign in, sign out, and a guest's claim of their place: the accounts services, as pages."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app.core.errors import DomainError
from app.domain import accounts, guests, tokens
from app.domain.account_schemas import SessionCreate
from app.domain.schemas import ClaimIn, UserCreate
from app.domain.users import hash_token, user_by_token
from app.infra.tx import run_transaction
from app.web.core import WebRoute, form_of, page, safe_next, see_other, text_field
from app.web.messages import Errors, from_domain, from_pydantic, simple_field
from app.web.session import current_user, end_session, session_token, start_session

router = APIRouter(route_class=WebRoute, include_in_schema=False)
_CHOOSE_PASSWORD = "Choose a password of at least 8 characters."


def _host(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.get("/signup", name="web_signup")
async def signup_page(request: Request) -> Response:
    return page(request, "signup.html", values={}, errors={})


@router.post("/signup")
async def signup(request: Request) -> Response:
    form = await form_of(request)
    values = {k: text_field(form, k, 300) for k in ("name", "email")}
    password = form.get("password")
    errors: Errors = {}
    if not isinstance(password, str) or not password:
        errors["password"] = _CHOOSE_PASSWORD
    else:
        try:
            body = UserCreate.model_validate({**values, "password": password})
            _, token = await accounts.register(
                request.app.state.accounts, name=body.name, email=body.email, password=body.password
            )
        except ValidationError as exc:
            errors = from_pydantic(exc, simple_field)
        except DomainError as exc:
            errors = from_domain(exc, simple_field)
        else:
            start_session(request, token)
            return see_other("/?welcome=1")
    return page(request, "signup.html", status=422, values=values, errors=errors)


@router.get("/signin", name="web_signin")
async def signin_page(request: Request) -> Response:
    return page(request, "signin.html", values={}, errors={}, next=safe_next(request.query_params.get("next")))


@router.post("/signin")
async def signin(request: Request) -> Response:
    form = await form_of(request)
    email, password = text_field(form, "email", 300), form.get("password")
    target = safe_next(form.get("next"))
    status = 422
    try:
        body = SessionCreate.model_validate({"email": email, "password": password if isinstance(password, str) else ""})
        _, token, evicted = await accounts.login(
            request.app.state.accounts, email=body.email, password=body.password, host=_host(request)
        )
    except ValidationError as exc:
        errors = from_pydantic(exc, simple_field)
    except DomainError as exc:  # the same message for a wrong email and a wrong password; 429 when limited
        errors = from_domain(exc, simple_field)
        status = 429 if exc.code == "too-many-attempts" else 401 if exc.code == "invalid-credentials" else 422
    else:
        for key in evicted:
            request.app.state.token_cache.discard(key)
        start_session(request, token)
        return see_other(target)
    response = page(request, "signin.html", status=status, values={"email": email}, errors=errors, next=target)
    if status == 429:
        response.headers["Retry-After"] = "60"
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    """Revokes the session's token (every worker refuses it within a second) and forgets the cookie."""
    user, token = await current_user(request), session_token(request)
    if user is not None and token is not None:
        state = request.app.state

        async def work(conn: AsyncConnection) -> None:
            owner = await user_by_token(conn, hash_token(token), touch_after_s=state.settings.token_touch_interval_s)
            if owner is not None:
                await tokens.revoke_token(conn, user_id=owner.user.id, token_id=owner.token_id)

        await run_transaction(state.engine, state.settings, work)
        state.token_cache.discard(hash_token(token))
    end_session(request)
    return see_other("/signin?signed_out=1")


@router.get("/claim", name="web_claim")
async def claim_page(request: Request) -> Response:
    code = request.query_params.get("code", "")[:200]
    return page(request, "claim.html", values={"invite_code": code}, errors={})


@router.post("/claim")
async def claim(request: Request) -> Response:
    form = await form_of(request)
    values = {k: text_field(form, k, 300) for k in ("invite_code", "email", "name")}
    password = form.get("password")
    errors: Errors = {}
    if not isinstance(password, str) or not password:
        return page(request, "claim.html", status=422, values=values, errors={"password": _CHOOSE_PASSWORD})
    try:
        body = ClaimIn.model_validate({**values, "name": values["name"] or None, "password": password})
        _, token = await guests.claim(
            request.app.state.accounts, code=body.invite_code, email=body.email, name=body.name, password=body.password
        )
    except ValidationError as exc:
        errors = from_pydantic(exc, simple_field)
    except DomainError as exc:
        errors = from_domain(exc, simple_field)
    else:
        start_session(request, token)
        return see_other("/?welcome=1")
    return page(request, "claim.html", status=422, values=values, errors=errors)
