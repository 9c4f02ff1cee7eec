"""The web app's session and its CSRF protection.

Session: signing in (or up, or claiming a guest's place) makes an API token through the accounts
services, and the cookie `quits_session` holds it (`HttpOnly`, `SameSite=Lax`, `Secure` when the page
is served over HTTPS, no `Max-Age`). A request's user is that token's owner, through the same per-worker
token cache as a bearer token; signing out revokes the token, so a copied cookie dies with it.

CSRF: every form carries `csrf`, an HMAC keyed by a random per-browser cookie (`quits_csrf`, HttpOnly,
made on the first page and replaced at every sign-in and sign-out) over the session cookie's hash; every
POST must carry the value its cookies give, and must not come from another site (`Origin`,
`Sec-Fetch-Site`). A page on another site can neither read the cookie nor compute the value, and a
value minted before signing in is worthless after it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from app.api.deps import user_for_token
from app.core.errors import DomainError
from app.domain.users import MAX_TOKEN_LENGTH, UserRecord

SESSION_COOKIE = "quits_session"
CSRF_COOKIE = "quits_csrf"
CSRF_FIELD = "csrf"
_CSRF_COOKIE_MAX_AGE_S = 400 * 24 * 3600  # browsers cap cookie lifetimes at 400 days
_MAX_COOKIE = 200


class CsrfRefused(Exception):
    """A POST without the right CSRF value, or from another site: refused before anything is read."""


def is_https(request: Request) -> bool:
    """Served over HTTPS (uvicorn's --proxy-headers turns X-Forwarded-Proto into the scheme)."""
    return request.url.scheme == "https"


def _cookie(request: Request, name: str) -> str | None:
    value = request.cookies.get(name)
    if not value or len(value) > _MAX_COOKIE or not value.isascii():
        return None
    return value


def _csrf_key(request: Request) -> str:
    """This browser's CSRF key: the cookie, or the one this response is about to set."""
    fresh: str | None = getattr(request.state, "new_csrf_key", None)
    if fresh is not None:
        return fresh
    existing = _cookie(request, CSRF_COOKIE)
    if existing is not None:
        return existing
    request.state.new_csrf_key = secrets.token_urlsafe(32)
    return str(request.state.new_csrf_key)


def _session_value(request: Request) -> str:
    if getattr(request.state, "session_ended", False):
        return ""
    fresh: str | None = getattr(request.state, "new_session", None)
    return fresh if fresh is not None else (_cookie(request, SESSION_COOKIE) or "")


def csrf_token(request: Request) -> str:
    """The value every form of this page carries in its `csrf` field."""
    bound = hashlib.sha256(_session_value(request).encode()).digest()
    mac = hmac.new(_csrf_key(request).encode(), b"quits-form|" + bound, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _same_origin(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.scheme == request.url.scheme and parts.netloc == request.headers.get("host", "")


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse a POST whose `csrf` value is missing or wrong, or that another site sent."""
    if not _same_origin(request):
        raise CsrfRefused("cross-site request")
    if _cookie(request, CSRF_COOKIE) is None or not submitted:
        raise CsrfRefused("no CSRF value")
    if not hmac.compare_digest(submitted.encode(), csrf_token(request).encode()):
        raise CsrfRefused("wrong CSRF value")


def session_token(request: Request) -> str | None:
    token = _cookie(request, SESSION_COOKIE)
    return token if token is not None and len(token) <= MAX_TOKEN_LENGTH else None


async def current_user(request: Request) -> UserRecord | None:
    """The signed-in person, or None (no cookie, or its token was revoked)."""
    cached: UserRecord | None = getattr(request.state, "web_user", None)
    if cached is not None:
        return cached
    token = session_token(request)
    if token is None:
        return None
    try:
        user = await user_for_token(request, token)
    except DomainError:
        return None
    request.state.web_user = user
    return user


def start_session(request: Request, token: str) -> None:
    """Signed in: the response sets the session cookie and a new CSRF key (no fixation across sign-ins)."""
    request.state.new_session = token
    request.state.new_csrf_key = secrets.token_urlsafe(32)


def end_session(request: Request) -> None:
    request.state.session_ended = True
    request.state.new_csrf_key = secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class CookieOptions:
    secure: bool

    def set(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name, value, max_age=max_age, path="/", secure=self.secure, httponly=True, samesite="lax"
        )

    def delete(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure, httponly=True, samesite="lax")


def apply_cookies(request: Request, response: Response) -> None:
    """Write what this request decided: a new CSRF key, a new session, or the end of one."""
    options = CookieOptions(secure=is_https(request))
    fresh_key: str | None = getattr(request.state, "new_csrf_key", None)
    if fresh_key is not None:
        options.set(response, CSRF_COOKIE, fresh_key, _CSRF_COOKIE_MAX_AGE_S)
    if getattr(request.state, "session_ended", False):
        options.delete(response, SESSION_COOKIE)
    else:
        fresh_session: str | None = getattr(request.state, "new_session", None)
        if fresh_session is not None:
            options.set(response, SESSION_COOKIE, fresh_session, None)
