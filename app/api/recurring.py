"""Recurring expenses: rules that make an ordinary expense on each date of a schedule, exactly once."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import orjson
from fastapi import APIRouter, Header, Request
from starlette.responses import Response

from app.api.deps import CurrentUser, EngineDep, SettingsDep, not_found_unless_member, writable_currency
from app.api.expenses import IdempotencyKeyHeader, claim_for, outcome_response, parse_if_match
from app.api.pagination import PageDep, require_time_cursor, scope_of
from app.api.render import problems, respond, time_page
from app.core.errors import DomainError
from app.domain import recurring as svc
from app.domain import recurring_rules as rules
from app.domain.groups import group_for_member
from app.domain.recurring_schemas import RecurringIn, RecurringOut
from app.domain.schemas import Page
from app.ledger.commands import Claim

router = APIRouter(tags=["recurring"])

RuleIfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=1_000,
        description=(
            "Optional. The `ETag` of the rule the change is based on (or `*`). The tag changes with every change "
            "of the rule: an edit, a skip, a stop and each occurrence made. If it no longer matches, 412 "
            "precondition-failed and nothing is written."
        ),
    ),
]
_PATH = "/groups/{group_id}/recurring/{rule_id}"


def _headers(rule: rules.RuleRecord) -> dict[str, str]:
    return {"ETag": rules.etag(rule)}


def wake_scheduler(request: Request) -> None:
    """This worker's scheduler makes what is due now, not at its next interval."""
    scheduler = getattr(request.app.state, "scheduler", None)
    if scheduler is not None and request.app.state.settings.recurring_scheduler:
        scheduler.wake()


@router.post(
    "/groups/{group_id}/recurring",
    status_code=201,
    response_model=RecurringOut,
    responses=problems(400, 401, 404, 409, 422, 503),
    summary="Create a recurring rule (idempotent with Idempotency-Key)",
    description=(
        "An expense body (every field of `POST .../expenses` but `date`) and a `schedule`. The body is "
        "validated as an expense dated `start_date` would be (payer and participants current members), the "
        "schedule by its own rules (422 naming the field, nothing written). Each occurrence is an ordinary "
        "expense, dated the occurrence's date and carrying `recurring_id`, made at most once however many "
        "workers or hosts run; occurrences already due (a `start_date` in the past) are made within seconds."
    ),
)
async def post_recurring(
    group_id: UUID,
    body: RecurringIn,
    request: Request,
    user: CurrentUser,
    engine: EngineDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    claim = claim_for(request, user.id, idempotency_key, settings, await request.body())
    currency = await writable_currency(request, engine, group_id, user)
    try:
        validated = rules.validate(body, currency)
        with request.app.state.keys_in_flight.hold(claim.user_id, claim.key):
            outcome, rendered = await svc.create(
                request.app.state.write_pool, engine, settings, claim=claim, group_id=group_id, validated=validated
            )
    except DomainError as exc:
        if exc.code == "validation-error":
            await not_found_unless_member(engine, group_id, user.id)
        raise
    wake_scheduler(request)
    rule_id = orjson.loads(outcome.body if outcome.replayed and outcome.body else rendered)["id"]
    headers = {"Location": f"/v1/groups/{group_id}/recurring/{rule_id}", "ETag": '"1"'}  # the body is version 1
    return outcome_response(outcome, rendered, svc.CREATED, headers)


@router.get(
    "/groups/{group_id}/recurring",
    response_model=Page[RecurringOut],
    responses=problems(400, 401, 404, 422),
    summary="List the group's recurring rules, newest first (active and stopped)",
    description="Keyset-paginated on (created_at, id), newest first; stopped rules are listed with `active` false.",
)
async def list_recurring(group_id: UUID, user: CurrentUser, engine: EngineDep, page: PageDep) -> Response:
    scope = scope_of("recurring", group_id)
    after = require_time_cursor(page, scope)
    async with engine.connect() as conn:
        await group_for_member(conn, group_id, user.id)
        found = await rules.list_page(conn, group_id, page.limit + 1, after=after)
    return time_page(found, page.limit, rules.render, scope)


@router.get(
    _PATH,
    response_model=RecurringOut,
    responses=problems(401, 404, 422),
    summary="One recurring rule (active or stopped), with its ETag",
)
async def get_recurring(group_id: UUID, rule_id: UUID, user: CurrentUser, engine: EngineDep) -> Response:
    async with engine.connect() as conn:
        await group_for_member(conn, group_id, user.id)
        rule = await rules.get(conn, group_id, rule_id)
    return respond(rules.render(rule), headers=_headers(rule))


async def _change(
    request: Request, *, claim: Claim, group_id: UUID, rule_id: UUID, how: svc.How, if_match: str | None
) -> Response:
    state = request.app.state
    with state.keys_in_flight.hold(claim.user_id, claim.key):
        outcome, rule = await svc.change(
            state.write_pool, state.engine, state.settings, claim=claim, group_id=group_id, rule_id=rule_id,
            how=how, if_match=parse_if_match(if_match),
        )  # fmt: skip
    wake_scheduler(request)
    if rule is None:  # a replay: the tag of the stored body
        assert outcome is not None and outcome.body is not None
        return outcome_response(outcome, b"", svc.UPDATED, {"ETag": f'"{orjson.loads(outcome.body)["version"]}"'})
    return outcome_response(outcome, orjson.dumps(rules.render(rule)), svc.UPDATED, _headers(rule))


@router.put(
    _PATH,
    response_model=RecurringOut,
    responses=problems(400, 401, 404, 409, 412, 422, 503),
    summary="Edit a recurring rule: applies to occurrences not yet made",
    description=(
        "Same body and rules as create. Expenses already made stay as they are (edit them one by one). The "
        "rule goes on from the first date of the new schedule after the last occurrence made or skipped (a "
        "422 when there is none); `count` counts from the new `start_date`. A `PUT` equal to the rule writes "
        "nothing: 200, same `version` and `ETag`. Editing a stopped rule is a 409 `recurring-stopped`."
    ),
)
async def put_recurring(
    group_id: UUID,
    rule_id: UUID,
    body: RecurringIn,
    request: Request,
    user: CurrentUser,
    engine: EngineDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
    if_match: RuleIfMatch = None,
) -> Response:
    claim = claim_for(request, user.id, idempotency_key, settings, await request.body())
    async with engine.connect() as conn:
        group = await group_for_member(conn, group_id, user.id)
    validated = rules.validate(body, group.currency)
    how = svc.edited(validated, settings, user_id=user.id)
    return await _change(request, claim=claim, group_id=group_id, rule_id=rule_id, how=how, if_match=if_match)


@router.delete(
    _PATH,
    response_model=RecurringOut,
    responses=problems(400, 401, 404, 409, 412, 422, 503),
    summary="Stop a recurring rule; the expenses it made stay. Repeating it returns the same body",
    description=(
        "The rule stays, with `active` false and `stop_reason` `stopped`; `recurring.stopped` is recorded. "
        "A second DELETE (or a DELETE of a finished rule) is not an error: 200 with the rule as it is."
    ),
)
async def delete_recurring(
    group_id: UUID,
    rule_id: UUID,
    request: Request,
    user: CurrentUser,
    engine: EngineDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
    if_match: RuleIfMatch = None,
) -> Response:
    claim = claim_for(request, user.id, idempotency_key, settings, b"")
    async with engine.connect() as conn:
        await group_for_member(conn, group_id, user.id)
    return await _change(request, claim=claim, group_id=group_id, rule_id=rule_id, how=svc.stopped, if_match=if_match)


@router.post(
    _PATH + "/skip",
    response_model=RecurringOut,
    responses=problems(400, 401, 404, 409, 412, 422, 503),
    summary="Skip the next occurrence of a recurring rule",
    description=(
        "The next occurrence (`next_date`) will not be made; the one after it becomes next. A skipped "
        "occurrence counts towards `count`; skipping the last one finishes the rule. Send `If-Match` to be "
        "sure which occurrence is skipped (one made meanwhile changes the tag). A stopped rule: 409."
    ),
)
async def skip_recurring(
    group_id: UUID,
    rule_id: UUID,
    request: Request,
    user: CurrentUser,
    engine: EngineDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
    if_match: RuleIfMatch = None,
) -> Response:
    claim = claim_for(request, user.id, idempotency_key, settings, b"")
    async with engine.connect() as conn:
        await group_for_member(conn, group_id, user.id)
    return await _change(request, claim=claim, group_id=group_id, rule_id=rule_id, how=svc.skip, if_match=if_match)
