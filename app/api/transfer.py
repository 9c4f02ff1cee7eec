"""Export (GET .../export) and import (POST /v1/groups/import): the HTTP edge of app.domain.export and
app.domain.imports."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app.api.deps import CurrentUser, EngineDep, SettingsDep
from app.api.expenses import IdempotencyKeyHeader, outcome_response
from app.api.openapi_transfer import EXPORT_DESCRIPTION, IMPORT_DESCRIPTION
from app.api.render import created_at_location, problems
from app.domain import export, groups
from app.domain.idempotency import parse_key
from app.domain.imports import run
from app.domain.imports.plan import ImportOptions
from app.domain.transfer_schemas import ImportOut
from app.infra.gate import Slots
from app.ledger.commands import Claim

router = APIRouter(tags=["export and import"])
IMPORT_PATH = "/v1/groups/import"
MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


class ExportResponse(StreamingResponse):
    """A stream that gives its export slot back and closes its generator (and so its snapshot connection)
    however the response ends: finished, failed, or the client gone before or during the stream."""

    def __init__(
        self, content: AsyncGenerator[bytes, None], *, slots: Slots, media_type: str, headers: dict[str, str]
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self._content, self._slots = content, slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self._content.aclose()
            finally:
                self._slots.release()


@router.get(
    "/groups/{group_id}/export",
    responses={
        200: {
            "description": "The export, streamed",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/QuitsExport"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        **problems(401, 404, 422, 503),
    },
    response_class=StreamingResponse,
    summary="Export the group: the whole quits JSON document, or a CSV for spreadsheets (streamed)",
    description=EXPORT_DESCRIPTION,
)
async def get_export(
    group_id: UUID,
    request: Request,
    user: CurrentUser,
    engine: EngineDep,
    settings: SettingsDep,
    format: Annotated[Literal["json", "csv"], Query(description="`json` (default) or `csv`.")] = "json",
) -> Response:
    async with engine.connect() as conn:
        group = await groups.group_for_member(conn, group_id, user.id)
    slots: Slots = request.app.state.export_slots
    await slots.acquire(settings.import_wait_s, "exports")
    filename = f"quits-{group.id}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
    return ExportResponse(export.stream(engine, settings, group.id, fmt=format), slots=slots, media_type=MEDIA[format],
                          headers=headers)  # fmt: skip


def _fingerprint(request: Request, media_type: str, body: bytes) -> bytes:
    """The request as its Idempotency-Key remembers it: method, path, query (sorted), media type and the
    body's bytes (a file is compared byte for byte)."""
    query = orjson.dumps(sorted(request.query_params.multi_items()))  # unambiguous, whatever the values hold
    head = orjson.dumps([request.method, request.url.path, query.decode(), media_type])
    return hashlib.sha256(head + b"\n" + hashlib.sha256(body).digest()).digest()


NameQuery = Annotated[str | None, Query(min_length=1, max_length=100, description="The new group's name.")]
CurrencyQuery = Annotated[str | None, Query(pattern="^[A-Z]{3}$", description="The group's currency.")]
MeQuery = Annotated[str | None, Query(min_length=1, max_length=100, description="The person in the file you are.")]


@router.post(
    "/groups/import",
    status_code=201,
    response_model=ImportOut,
    responses={**created_at_location("/v1/groups/{group_id}"), **problems(400, 401, 409, 415, 422, 503)},
    summary="Import a group from a quits export, an ihatemoney JSON export or a Splitwise CSV export",
    description=IMPORT_DESCRIPTION,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/QuitsExport"},
                                                          {"$ref": "#/components/schemas/IhatemoneyBills"}]}},
                "text/csv": {"schema": {"type": "string", "description": "A Splitwise CSV export"}},
            },
        }
    },
)
async def post_import(
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
    name: NameQuery = None,
    currency: CurrencyQuery = None,
    me: MeQuery = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    key = parse_key(idempotency_key)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    claim = Claim(user_id=user.id, key=key, fingerprint=_fingerprint(request, media_type, body) if key else b"",
                  ttl_hours=settings.idempotency_ttl_hours)  # fmt: skip
    options = ImportOptions(caller=user, name=name, currency=currency, me=me, max_rows=settings.import_max_rows,
                            max_members=settings.max_group_members, now=datetime.now(UTC))  # fmt: skip
    slots: Slots = request.app.state.import_slots
    state = request.app.state
    with state.keys_in_flight.hold(user.id, key):
        async with slots.hold(settings.import_wait_s, "imports"):
            group_id, rendered, payload = await asyncio.to_thread(run.prepare, body, media_type, options, claim=claim)
            outcome = await run.write(state.write_pool, settings, group_id=group_id, payload=payload)
    shown: dict[str, Any] = orjson.loads(outcome.body if outcome.replayed and outcome.body else rendered)
    return outcome_response(outcome, rendered, run.CREATED, {"Location": f"/v1/groups/{shown['id']}"})
