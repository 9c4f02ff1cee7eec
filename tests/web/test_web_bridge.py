"""The places kept for export, import and recurring expenses (built on other branches): absent routes give
no links and 404 pages; once the API routes exist, the pages call them as the signed-in person."""

from __future__ import annotations

from uuid import UUID

import orjson
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL
from starlette.responses import Response

from app.api.deps import CurrentUser
from app.infra.config import Settings
from app.main import create_app
from tests.web.webclient import Person


def test_without_the_routes_there_is_no_link_and_no_page(client: TestClient, clean_db: URL) -> None:
    ann = Person(client, "Ann").sign_up()
    gid = ann.group()
    page = ann.get(f"/groups/{gid}").text
    assert "Export as CSV" not in page and "/import" not in page
    for path in (f"/groups/{gid}/export?format=csv", "/import"):
        assert ann.get(path).status_code == 404


def test_with_the_routes_the_pages_call_them(settings: Settings, clean_db: URL) -> None:
    app = create_app(settings)
    seen: list[str] = []

    async def export(group_id: UUID, format: str, user: CurrentUser) -> Response:
        seen.append(f"export {format} by {user.name}")
        return Response("when,Ann\n", media_type="text/csv")

    async def import_(request: Request, user: CurrentUser) -> Response:
        seen.append(f"import {len(await request.body())} bytes as {request.headers['content-type']}")
        return Response(orjson.dumps({"id": "00000000-0000-0000-0000-000000000001"}), 201)

    app.add_api_route("/v1/groups/{group_id}/export", export, methods=["GET"])
    app.add_api_route("/v1/groups/import", import_, methods=["POST"])
    with TestClient(app) as c:
        ann = Person(c, "Ann").sign_up()
        gid = ann.group()
        page = ann.get(f"/groups/{gid}").text
        assert "Export as CSV" in page and "Recurring expenses" in page and 'href="/import"' in page
        r = ann.get(f"/groups/{gid}/export?format=csv")
        assert r.status_code == 200 and r.text == "when,Ann\n" and "attachment" in r.headers["content-disposition"]
        assert "Rent" not in ann.get(f"/groups/{gid}/recurring").text  # the real API (issue #16): no rule yet
        ann.get("/import")
        r = ann.post("/import", {"idem": "web-imp"}, files={"file": ("trip.csv", b"Date,Cost\n", "text/csv")})
        assert r.status_code == 303 and r.headers["location"].startswith("/groups/00000000-")
    assert seen == ["export csv by Ann", "import 10 bytes as text/csv"]
