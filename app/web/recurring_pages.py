"""Recurring expenses (issue #16): the group's rules, a new rule, skip the next one, stop one. The services
of app.domain.recurring and app.domain.recurring_rules, as app.api.recurring calls them (the same claim of
the form's own key, the same validation), with the messages next to the fields."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from app.api.expenses import parse_if_match
from app.api.pagination import PageParams, encode_time_cursor, require_time_cursor, scope_of
from app.api.recurring import wake_scheduler
from app.core.errors import DomainError
from app.domain import recurring as svc
from app.domain import recurring_rules as rules
from app.domain.users import UserRecord
from app.web.core import WebRoute, form_of, new_key, page, require_user, see_other, text_field
from app.web.forms import ExpenseForm, blank, from_form
from app.web.groups import load_view
from app.web.messages import FORM, from_domain
from app.web.recurring_forms import EVERY, Checked, ScheduleForm, check, rule_field_of, schedule_from
from app.web.views import GroupView
from app.web.writes import claim_for, waiting_for_first_click

router = APIRouter(route_class=WebRoute, include_in_schema=False)
RULES_PAGE = 50

_REASONS = {
    svc.STOPPED: "Stopped by a member",
    svc.FINISHED: "Finished: the last one was made or skipped",
    "member-left": "Stopped: someone who paid or shared it left the group",
    "author-left": "Stopped: the person who set it up left the group",
    "balance-limit-exceeded": "Stopped: it would take the balances past the largest amount the group can hold",
    "invalid": "Stopped: its expense could no longer be made",
}
_UNITS = {"day": ("day", "days"), "week": ("week", "weeks"), "month": ("month", "months"), "year": ("year", "years")}


@dataclass(frozen=True, slots=True)
class RuleView:
    """A rule as the list shows it."""

    rule: rules.RuleRecord

    @property
    def template(self) -> dict[str, Any]:
        return self.rule.template

    @property
    def every(self) -> str:
        one, many = _UNITS.get(self.rule.every, (self.rule.every, self.rule.every))
        n = self.rule.repeat_interval
        return f"Every {one}" if n == 1 else f"Every {n} {many}"

    @property
    def left(self) -> int | None:
        """Occurrences still to come of a rule with a count (skipped ones count as made)."""
        if self.rule.count is None:
            return None
        return max(self.rule.count - self.rule.next_index, 0) if self.rule.active else 0

    @property
    def reason(self) -> str:
        return _REASONS.get(self.rule.stop_reason or "", "Stopped")

    @property
    def etag(self) -> str:
        return rules.etag(self.rule)


async def _view(request: Request, group_id: uuid.UUID, user: UserRecord) -> GroupView:
    async with request.app.state.engine.connect() as conn:
        return await load_view(conn, group_id, user)


@router.get("/groups/{group_id}/recurring", name="web_recurring")
async def list_rules(request: Request, group_id: uuid.UUID) -> Response:
    user = await require_user(request)
    return await _list_page(request, group_id, user)


async def _list_page(request: Request, group_id: uuid.UUID, user: UserRecord, *, message: str = "",
                     status: int = 200) -> Response:  # fmt: skip
    scope = scope_of("web-recurring", group_id)
    cursor = request.query_params.get("cursor") or None
    after = require_time_cursor(PageParams(limit=RULES_PAGE, cursor=cursor), scope)
    async with request.app.state.engine.connect() as conn:
        view = await load_view(conn, group_id, user)
        found = await rules.list_page(conn, group_id, RULES_PAGE + 1, after=after)
    shown = found[:RULES_PAGE]
    more = len(found) > RULES_PAGE
    return page(
        request,
        "recurring.html",
        status=status,
        view=view,
        rules=[RuleView(r) for r in shown],
        keys=[new_key() for _ in shown],
        next_cursor=encode_time_cursor(scope, shown[-1].created_at, shown[-1].id) if more else None,
        older=after is not None,
        done=request.query_params.get("done", ""),
        message=message,
    )


def _form_page(request: Request, view: GroupView, f: ExpenseForm, s: ScheduleForm, *, checked: Checked | None,
               status: int = 200) -> Response:  # fmt: skip
    return page(
        request,
        "recurring_form.html",
        status=status,
        view=view,
        form=f,
        schedule=s,
        errors=checked.errors if checked else {},
        preview=checked.preview if checked else None,
        every_choices=EVERY,
        with_date=False,
        today=dt.datetime.now(dt.UTC).date().isoformat(),
    )


@router.get("/groups/{group_id}/recurring/new", name="web_new_recurring")
async def new_rule(request: Request, group_id: uuid.UUID) -> Response:
    user = await require_user(request)
    view = await _view(request, group_id, user)
    f = blank(view.members_by_name(), currency=view.currency, payer=user.id, idem=new_key())
    s = ScheduleForm(start_date=rules.today(request.app.state.settings).isoformat())
    return _form_page(request, view, f, s, checked=None)


@router.post("/groups/{group_id}/recurring")
async def create_rule(request: Request, group_id: uuid.UUID) -> Response:
    user = await require_user(request)
    view = await _view(request, group_id, user)
    form = await form_of(request)
    f, s = from_form(form, view.members_by_name(), view.currency), schedule_from(form)
    checked = check(f, s, view.currency)
    if checked.errors or checked.body is None or checked.validated is None or text_field(form, "action") == "preview":
        return _form_page(request, view, f, s, checked=checked, status=422 if checked.errors else 200)
    claim = claim_for(request, user.id, f.idem, checked.body.model_dump(mode="json", exclude_none=True))
    state, validated = request.app.state, checked.validated

    async def write() -> Any:
        with state.keys_in_flight.hold(claim.user_id, claim.key):
            return await svc.create(state.write_pool, state.engine, state.settings, claim=claim, group_id=group_id,
                                    validated=validated)  # fmt: skip

    try:
        await waiting_for_first_click(write)
    except DomainError as exc:
        if exc.code == "not-found":
            raise
        status = 409 if exc.code.startswith("idempotency") else 422
        errors = from_domain(exc, rule_field_of(f))  # e.g. too many occurrences due at once: start_date
        return _form_page(request, view, f, s, checked=Checked(body=None, validated=None, preview=checked.preview,
                                                                  errors=errors), status=status)  # fmt: skip
    wake_scheduler(request)
    return see_other(f"/groups/{group_id}/recurring?done=created")


async def _change(request: Request, group_id: uuid.UUID, rule_id: uuid.UUID, *, how: svc.How, what: str,
                  if_match: bool) -> Response:  # fmt: skip
    """Skip or stop through svc.change, as the API's POST .../skip and DELETE do; the form's key makes a
    second click a replay, and (for a skip) the version shown makes sure the occurrence seen is skipped."""
    user = await require_user(request)
    form = await form_of(request)
    state = request.app.state
    await _view(request, group_id, user)  # 404 unless a member
    claim = claim_for(request, user.id, text_field(form, "idem", 300), {what: str(rule_id)})
    tags = parse_if_match(text_field(form, "if_match", 100) or None) if if_match else None

    async def write() -> Any:
        with state.keys_in_flight.hold(claim.user_id, claim.key):
            return await svc.change(state.write_pool, state.engine, state.settings, claim=claim, group_id=group_id,
                                    rule_id=rule_id, how=how, if_match=tags)  # fmt: skip

    try:
        await waiting_for_first_click(write)
    except DomainError as exc:
        if exc.code == "not-found":
            raise
        message = from_domain(exc, lambda _: FORM)[FORM]
        if exc.code == "precondition-failed":
            message = (
                "This recurring expense changed meanwhile (one was made, or someone skipped it), so nothing was "
                "skipped. Here it is now: skip again if you still want to."
            )
        return await _list_page(request, group_id, user, message=message, status=409)
    wake_scheduler(request)
    return see_other(f"/groups/{group_id}/recurring?done={what}#rule-{rule_id}")


@router.post("/groups/{group_id}/recurring/{rule_id}/skip")
async def skip_rule(request: Request, group_id: uuid.UUID, rule_id: uuid.UUID) -> Response:
    return await _change(request, group_id, rule_id, how=svc.skip, what="skipped", if_match=True)


@router.post("/groups/{group_id}/recurring/{rule_id}/stop")
async def stop_rule(request: Request, group_id: uuid.UUID, rule_id: uuid.UUID) -> Response:
    return await _change(request, group_id, rule_id, how=svc.stopped, what="stopped", if_match=False)

