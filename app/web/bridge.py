"""PLACEHOLDER bridge (issue #15) for the feature another branch is building: export and import. Until its
services land, the web app calls their API routes in-process as the signed-in person (the session's token as a
bearer token, through the whole app, middleware included), so the pages need no copy of their rules. Each
page answers 404 unless its API route exists (app.web.views.optional_links shows the links under the same
condition). When the services land, call them directly, as the other pages do.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from app.core.errors import not_found
from app.web.core import WebRoute, form_of, new_key, page, require_user, see_other, text_field
from app.web.session import session_token
from app.web.views import has_route

router = APIRouter(route_class=WebRoute, include_in_schema=False)
MAX_UPLOAD = 20 * 1024 * 1024


async def call_api(request: Request, method: str, path: str, *, query: dict[str, str] | None = None,
                   body: bytes = b"", content_type: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """One request to this app's own API, as the signed-in person; (status, headers, body)."""
    token = session_token(request) or ""
    raw = [(b"authorization", f"Bearer {token}".encode()), (b"content-length", str(len(body)).encode()),
           (b"host", request.headers.get("host", "localhost").encode())]  # fmt: skip
    if content_type:
        raw.append((b"content-type", content_type.encode()))
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": request.url.scheme, "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": urlencode(query or {}).encode(), "headers": raw, "client": request.scope.get("client"),
        "server": request.scope.get("server"), "state": {},
    }  # fmt: skip
    sent = False
    status, out_headers, chunks = 500, {}, []

    async def receive() -> Message:
        nonlocal sent
        if sent:  # the person is still there: a streamed response (the export) listens for a disconnect
            await asyncio.Event().wait()  # until the response is done and cancels this wait
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers.update({k.decode().lower(): v.decode() for k, v in message.get("headers", [])})
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await request.app(scope, receive, send)
    return status, out_headers, b"".join(chunks)


def _problem(body: bytes) -> list[str]:
    try:
        problem = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ["The request was refused."]
    errors = problem.get("errors", [])
    rows = [f"{' / '.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg', '')}" for e in errors]
    return rows or [str(problem.get("detail", "The request was refused."))]


@router.get("/groups/{group_id}/export")
async def export(request: Request, group_id: uuid.UUID) -> Response:
    await require_user(request)
    if not has_route(request, "GET", "/v1/groups/{group_id}/export"):
        raise not_found("page")
    kind = "csv" if request.query_params.get("format") == "csv" else "json"
    status, headers, body = await call_api(request, "GET", f"/v1/groups/{group_id}/export", query={"format": kind})
    if status != 200:
        raise not_found("group")
    disposition = f'attachment; filename="quits-{group_id}.{kind}"'
    return Response(body, media_type=headers.get("content-type"), headers={"Content-Disposition": disposition})


@router.get("/import", name="web_import")
async def import_page(request: Request) -> Response:
    await require_user(request)
    if not has_route(request, "POST", "/v1/groups/import"):
        raise not_found("page")
    return page(request, "import.html", key=new_key(), problems=[], values={})


@router.post("/import")
async def import_file(request: Request) -> Response:
    await require_user(request)
    if not has_route(request, "POST", "/v1/groups/import"):
        raise not_found("page")
    form = await form_of(request)
    upload = form.get("file")
    values = {k: text_field(form, k, 100) for k in ("name", "currency", "me")}
    key = text_field(form, "idem", 300)
    if not isinstance(upload, UploadFile) or not upload.filename:
        return page(request, "import.html", status=422, key=key, problems=["Choose a file."], values=values)
    data = await upload.read(MAX_UPLOAD + 1)
    csv = (upload.filename or "").lower().endswith(".csv")
    status, _, body = await call_api(
        request, "POST", "/v1/groups/import", query={k: v for k, v in values.items() if v}, body=data,
        content_type="text/csv" if csv else "application/json", headers={"Idempotency-Key": key} if key else None,
    )  # fmt: skip
    if status in (200, 201):
        return see_other(f"/groups/{orjson.loads(body)['id']}?done=imported")
    problems = ["The file is larger than 20 MiB."] if status == 413 else _problem(body)
    return page(request, "import.html", status=status, key=key, problems=problems, values=values)
