"""Export a group (CSV or JSON, streamed) and import a file as a new group: app.domain.export and
app.domain.imports, as app.api.transfer calls them (the same snapshot stream and export slots, the same
plan, command and import slots, the form's own key claimed like an Idempotency-Key), with an import's
refusals next to its fields: the file's faults listed by row and field, the options' next to theirs.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from fastapi import APIRouter
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from app.api.transfer import MEDIA, ExportResponse
from app.core.errors import DomainError, FieldError
from app.domain import export, groups
from app.domain.imports import run
from app.domain.imports.plan import ImportOptions
from app.domain.users import UserRecord
from app.infra.config import Settings
from app.ledger.commands import Claim
from app.web.core import WebRoute, form_of, new_key, page, require_user, see_other, text_field
from app.web.messages import FORM, Errors, message_for
from app.web.writes import claim_for, waiting_for_first_click

router = APIRouter(route_class=WebRoute, include_in_schema=False)
IMPORT_FORM = "/import"
FORM_OVERHEAD = 64 * 1024  # the import form's other fields and multipart framing, besides the file
SHOWN_FAULTS = 50
_OPTIONS = ("name", "currency", "me")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def upload_limit(settings: Settings) -> int:
    """The body limit of the import form (app.main gives its route this limit): the API's file limit and
    the form around it; a larger file within it is refused by the page, next to the field."""
    return settings.import_max_body_bytes + FORM_OVERHEAD


def size_text(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n / 1024:g} KiB"


@router.get("/groups/{group_id}/export", name="web_export")
async def export_group(request: Request, group_id: UUID) -> Response:
    """The download, streamed from one snapshot as the API streams it (at most export_concurrency at once)."""
    user = await require_user(request)
    state = request.app.state
    kind = "csv" if request.query_params.get("format") == "csv" else "json"
    async with state.engine.connect() as conn:
        group = await groups.group_for_member(conn, group_id, user.id)
    await state.export_slots.acquire(state.settings.import_wait_s, "exports")
    headers = {"Content-Disposition": f'attachment; filename="quits-{group.id}.{kind}"'}
    return ExportResponse(export.stream(state.engine, state.settings, group.id, fmt=kind), slots=state.export_slots,
                          media_type=MEDIA[kind], headers=headers)  # fmt: skip


def _import_page(request: Request, *, key: str, values: dict[str, str], errors: Errors, faults: list[str],
                 status: int = 200) -> Response:  # fmt: skip
    limit = size_text(request.app.state.settings.import_max_body_bytes)
    return page(request, "import.html", status=status, key=key, values=values, errors=errors, faults=faults,
                limit=limit)  # fmt: skip


@router.get(IMPORT_FORM, name="web_import")
async def import_page(request: Request) -> Response:
    await require_user(request)
    return _import_page(request, key=new_key(), values={}, errors={}, faults=[])


def _where(path: tuple[str | int, ...]) -> str:
    """A fault's place in the file: "row 3, Cost"; a quits or ihatemoney file's "expenses, row 2, amount"."""
    return ", ".join(f"row {p}" if isinstance(p, int) else str(p) for p in path)


def refusal(exc: DomainError) -> tuple[Errors, list[str]]:
    """An import's refusal: an option's fault next to its field; the file's faults next to the file field
    (the first SHOWN_FAULTS listed, by row and field); anything else (busy, a key reused) above the form."""
    if exc.code != "validation-error":
        return {FORM: message_for(exc)}, []
    errors: Errors = {}
    in_file = [f for f in exc.fields or [FieldError((), exc.detail)] if f.where != "query" or not f.path]
    for f in exc.fields:
        if f.where == "query" and f.path:
            errors.setdefault(str(f.path[0]), _sentence(f.msg))
    faults = [f"{_where(f.path)}: {f.msg}" if f.path else _sentence(f.msg) for f in in_file[:SHOWN_FAULTS]]
    if len(faults) == 1:
        errors["file"] = "The file was not imported. " + _sentence(faults[0])
    elif faults:
        errors["file"] = f"The file was not imported: {len(in_file)} problems, listed below."
    return errors, faults if len(faults) > 1 else []


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _options(form: FormData) -> tuple[dict[str, str], Errors]:
    """The form's name, currency and me, refused as the API's query parameters are."""
    values = {k: text_field(form, k, 200) for k in _OPTIONS}
    values["currency"] = values["currency"].upper()
    errors: Errors = {}
    for name in ("name", "me"):
        if len(values[name]) > 100:
            errors[name] = "Use at most 100 characters."
    if values["currency"] and not _CURRENCY.fullmatch(values["currency"]):
        errors["currency"] = "Enter a 3-letter currency code like USD."
    return values, errors


async def _upload(form: FormData, limit: int) -> tuple[bytes, str, Errors]:
    """The file's bytes (at most limit + 1 read) and media type, or why there is none."""
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return b"", "", {"file": "Choose the file to import."}
    data = await upload.read(limit + 1)
    if len(data) > limit:
        return b"", "", {"file": f"The file is larger than {size_text(limit)}: it was not imported."}
    name = upload.filename.lower()
    media = run.CSV if name.endswith(".csv") or (upload.content_type or "").startswith("text/csv") else run.JSON
    return data, media, {}


@router.post(IMPORT_FORM)
async def import_file(request: Request) -> Response:
    user = await require_user(request)
    state = request.app.state
    settings: Settings = state.settings
    form = await form_of(request)
    key = text_field(form, "idem", 300)
    values, errors = _options(form)
    body, media, file_errors = await _upload(form, settings.import_max_body_bytes)
    errors.update(file_errors)
    if errors:
        status = 413 if "larger than" in errors.get("file", "") else 422
        return _import_page(request, key=key, values=values, errors=errors, faults=[], status=status)
    claim = claim_for(request, user.id, key, {"media_type": media, "file_sha256": hashlib.sha256(body).hexdigest(),
                                              **{k: v for k, v in values.items() if v}})  # fmt: skip
    try:
        created = await waiting_for_first_click(lambda: _write(request, user, body, media, values=values, claim=claim))
    except DomainError as exc:
        errors, faults = refusal(exc)
        status = 409 if exc.code.startswith("idempotency") else 503 if exc.code == "try-again" else 422
        return _import_page(request, key=key, values=values, errors=errors, faults=faults, status=status)
    return see_other(f"/groups/{created['id']}?done=imported")


async def _write(request: Request, user: UserRecord, body: bytes, media: str, *, values: dict[str, str],
                 claim: Claim) -> dict[str, Any]:  # fmt: skip
    """The API's import: the plan in a worker thread, then one command, holding an import slot."""
    state = request.app.state
    settings: Settings = state.settings
    options = ImportOptions(caller=user, name=values["name"] or None, currency=values["currency"] or None,
                            me=values["me"] or None, max_rows=settings.import_max_rows,
                            max_members=settings.max_group_members, now=datetime.now(UTC))  # fmt: skip
    with state.keys_in_flight.hold(user.id, claim.key):
        async with state.import_slots.hold(settings.import_wait_s, "imports"):
            group_id, rendered, payload = await asyncio.to_thread(run.prepare, body, media, options, claim=claim)
            outcome = await run.write(state.write_pool, settings, group_id=group_id, payload=payload)
    shown: dict[str, Any] = orjson.loads(outcome.body if outcome.replayed and outcome.body else rendered)
    return shown
