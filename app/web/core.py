"""The web edge's plumbing: templates, the page renderer, and the route class every page goes through.

`WebRoute` checks CSRF on every POST before the handler runs, turns a DomainError into an HTML page (the
status from app.api.problems, the one place a code becomes a status), sends a person who is not signed
in to the sign-in page, writes the cookies the request decided on, and adds `Server-Timing` and the
security headers (a strict Content-Security-Policy: every script and style is served by the app).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from babel import Locale
from babel.dates import format_datetime
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from app.api.problems import status_of
from app.core.errors import DomainError
from app.core.money import currency_decimals, parse_amount
from app.domain.users import UserRecord
from app.web import fmt
from app.web.messages import message_for
from app.web.session import CSRF_FIELD, CsrfRefused, apply_cookies, check_csrf, csrf_token, current_user

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
MAX_FORM_FIELDS = 2_000

env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

env.filters["wire"] = fmt.wire_amount

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


class NotSignedIn(Exception):
    """The page needs a signed-in person: they are sent to the sign-in page, and back afterwards."""


@dataclass(frozen=True, slots=True)
class Fmt:
    """Formatting for templates, in the request's locale."""

    locale: Locale

    def money(self, minor: int, currency: str) -> str:
        return fmt.money(minor, currency, self.locale)

    def day(self, value: dt.date) -> str:
        return fmt.day(value, self.locale)

    def money_text(self, amount: str, currency: str) -> str:
        """A wire amount ("12.50", as the services rendered it) in the locale's format."""
        return fmt.money(parse_amount(amount, currency_decimals(currency), allow_zero=True), currency, self.locale)

    def when_text(self, value: str) -> str:
        """An RFC 3339 timestamp (as the services rendered it) in the locale's format."""
        return self.when(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))

    def when(self, value: dt.datetime) -> str:
        return str(format_datetime(value, format="medium", tzinfo=dt.UTC, locale=self.locale)) + " UTC"


def new_key() -> str:
    """A form's own Idempotency-Key, made when the form is rendered."""
    return "web-" + uuid.uuid4().hex


def locale_of(request: Request) -> Locale:
    return fmt.negotiate(request.headers.get("accept-language"))


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A whole page (or, for htmx, a fragment template) rendered with the common context."""
    locale = locale_of(request)
    html = env.get_template(template).render(
        request=request,
        user=getattr(request.state, "web_user", None),
        csrf=csrf_token(request),
        csrf_field=CSRF_FIELD,
        fmt=Fmt(locale),
        lang=locale.language,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(value: object) -> str:
    """A local path to go back to after signing in; anything else (another site) is the home page."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith(("//", "/\\")) and len(value) < 500:
        return value
    return "/"


async def require_user(request: Request) -> UserRecord:
    user = await current_user(request)
    if user is None:
        raise NotSignedIn
    return user


async def form_of(request: Request) -> FormData:
    return await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)


def text_field(form: FormData, name: str, limit: int = 2_000) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return page(request, "error.html", status=status, message=message, status_code=status)


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class WebRoute(APIRoute):
    """Every page: CSRF on POST, DomainError → an HTML page, sign-in redirects, cookies, headers."""

    def get_route_handler(self) -> Handler:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            started = time.perf_counter()
            await current_user(request)  # the session, if any, before anything renders
            try:
                if request.method == "POST":
                    form = await form_of(request)
                    submitted = form.get(CSRF_FIELD)
                    check_csrf(request, submitted if isinstance(submitted, str) else None)
                response = await original(request)
            except NotSignedIn:
                target = request.url.path if request.method == "GET" else "/"
                response = see_other("/signin?next=" + quote(target + (f"?{request.url.query}" if request.url.query
                                                                       and request.method == "GET" else ""), safe="/"))
            except CsrfRefused:
                msg = "This form has expired or was sent from another site. Nothing was saved: reload and try again."
                response = error_page(request, 403, msg)
            except DomainError as exc:
                response = error_page(request, status_of(exc), message_for(exc))
            except RequestValidationError:
                response = error_page(request, 404, "Not found.")
            apply_cookies(request, response)
            response.headers.update(SECURITY_HEADERS)
            response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
            return response

        return handler

