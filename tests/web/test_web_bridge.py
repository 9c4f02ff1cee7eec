"""The web's export, import and recurring pages (app/web/bridge.py) call the API routes as the signed-in person:
the links are shown, the export downloads the API's file and the import lands as a new group."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from tests.web.webclient import Person


def test_the_pages_call_the_api_routes(client: TestClient, clean_db: URL) -> None:
    ann = Person(client, "Ann").sign_up()
    gid = ann.group()
    page = ann.get(f"/groups/{gid}").text
    assert "Export as CSV" in page and "Recurring expenses" in page and 'href="/import"' in page
    r = ann.get(f"/groups/{gid}/export?format=csv")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert r.text.splitlines()[0] == "Date,Description,Category,Cost,Currency,Ann"
    assert "Rent" not in ann.get(f"/groups/{gid}/recurring").text  # no rule yet
    ann.get("/import")
    csv = b"Date,Description,Category,Cost,Currency,Ann,Ben\n2024-01-05,Dinner,Dining out,10.00,EUR,5.00,-5.00\n"
    r = ann.post("/import", {"idem": "web-imp", "me": "Ann"}, files={"file": ("trip.csv", csv, "text/csv")})
    assert r.status_code == 303 and r.headers["location"].startswith("/groups/"), r.text
    assert "Ben" in ann.get(r.headers["location"]).text
