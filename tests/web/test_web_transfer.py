"""Export and import in the web app through the in-process app: the downloads (CSV and JSON, as the API's
export), the imports of a Splitwise CSV and an ihatemoney JSON (tests/fixtures), an export imported back,
and refused files and options: the faults listed next to the file field by row and field, nothing written.
A double submission of the import form makes one group."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from app.infra.config import Settings
from app.main import create_app
from tests.dbutil import assert_ledger_invariants, counts, run_sql
from tests.web.test_web_forms import expense, refused, trip
from tests.web.webclient import Person, field_error, idem_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SPLITWISE = (FIXTURES / "splitwise" / "trip.csv").read_bytes()
IHATEMONEY = (FIXTURES / "ihatemoney" / "bills.json").read_bytes()
WRITES = ("groups", "memberships", "users", "expenses", "settlements", "ledger_entries", "activity",
          "idempotency_keys")  # fmt: skip


@pytest.fixture
def ann(client: TestClient, clean_db: URL) -> Person:
    return Person(client, "Ann").sign_up()


def send(person: Person, filename: str, data: bytes, media: str, **fields: str) -> Any:
    key = idem_of(person.get("/import").text)
    return person.post("/import", {"idem": key, **fields}, files={"file": (filename, data, media)})


def nets_by_name(db: URL, gid: str) -> dict[str, int]:
    rows = run_sql(db, "SELECT u.name, b.net_minor FROM member_balances b JOIN users u ON u.id = b.user_id"
                       " WHERE b.group_id = $1", uuid.UUID(gid))  # fmt: skip
    return {r["name"]: r["net_minor"] for r in rows}


def group_of(location: str) -> str:
    match = re.fullmatch(r"/groups/([0-9a-f-]{36})\?done=imported", location)
    assert match, location
    return match.group(1)


def test_export_downloads_csv_and_json(ann: Person, clean_db: URL) -> None:
    gid, ids = trip(ann)
    assert ann.post(f"/groups/{gid}/expenses", expense(ids)).status_code == 303
    page = ann.get(f"/groups/{gid}").text
    assert f'href="/groups/{gid}/export?format=csv"' in page and f'href="/groups/{gid}/export?format=json"' in page
    csv = ann.get(f"/groups/{gid}/export?format=csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["content-disposition"] == f'attachment; filename="quits-{gid}.csv"'
    lines = csv.text.splitlines()
    header = lines[0].split(",")
    assert header[:5] == ["Date", "Description", "Category", "Cost", "Currency"] and sorted(header[5:]) == ["Ann", "Bob"]
    assert ",Dinner,,30.00,USD," in lines[1]
    doc = ann.get(f"/groups/{gid}/export?format=json")
    assert doc.headers["content-disposition"] == f'attachment; filename="quits-{gid}.json"'
    body = json.loads(doc.content)
    assert body["format"] == "quits" and [e["description"] for e in body["expenses"]] == ["Dinner"]
    eve = Person(ann.client, "Eve").sign_up()
    assert eve.get(f"/groups/{gid}/export?format=csv").status_code == 404


def test_import_splitwise_csv(ann: Person, clean_db: URL) -> None:
    r = send(ann, "trip.csv", SPLITWISE, "text/csv", me="Ann", name="Paris")
    assert r.status_code == 303, r.text
    gid = group_of(r.headers["location"])
    page = ann.get(r.headers["location"]).text
    assert "Group imported." in page and "<h1>Paris</h1>" in page and "Ben" in page and "Cat" in page
    assert nets_by_name(clean_db, gid) == {"Ann": 1167, "Ben": 167, "Cat": -1334}
    assert_ledger_invariants(clean_db)


def test_import_ihatemoney_json(ann: Person, clean_db: URL) -> None:
    r = send(ann, "bills.json", IHATEMONEY, "application/json", me="Ann", currency="eur", name="Chalet")
    assert r.status_code == 422, r.text  # Ann is nobody in the file: said next to the field
    refused(r.text, "me", "Nobody in the file is named 'Ann'")
    before = counts(clean_db, WRITES)
    r = send(ann, "bills.json", IHATEMONEY, "application/json", me="Alice", currency="eur", name="Chalet")
    assert r.status_code == 303, r.text
    gid = group_of(r.headers["location"])
    assert set(nets_by_name(clean_db, gid)) == {"Ann", "Bob", "Chloé", "Dan"}  # Ann is Alice of the file
    assert counts(clean_db, ("groups",))["groups"] == before["groups"] + 1
    assert "Refund of the deposit" in ann.get(f"/groups/{gid}").text
    assert_ledger_invariants(clean_db)


def test_an_export_imports_back(ann: Person, clean_db: URL) -> None:
    gid, ids = trip(ann)
    assert ann.post(f"/groups/{gid}/expenses", expense(ids, amount="30.01")).status_code == 303
    for kind, media in (("json", "application/json"), ("csv", "text/csv")):
        data = ann.get(f"/groups/{gid}/export?format={kind}").content
        r = send(ann, f"export.{kind}", data, media, me="Ann", name=f"Back from {kind}")
        assert r.status_code == 303, r.text
        assert nets_by_name(clean_db, group_of(r.headers["location"])) == nets_by_name(clean_db, gid)


def test_a_bad_file_lists_its_faults_and_writes_nothing(ann: Person, clean_db: URL) -> None:
    before = counts(clean_db, WRITES)
    bad = SPLITWISE.replace(b"30.00,EUR,20.00", b"30.00,EUR,twenty").replace(b"10.00,EUR,-3.33", b"ten,EUR,-3.33")
    r = send(ann, "trip.csv", bad, "text/csv", me="Ann", name="Paris")
    assert r.status_code == 422, r.text
    message = field_error(r.text, "file")
    assert message is not None and "problems, listed below" in message, message
    faults = re.search(r'<ul class="faults error" id="f-file-faults">(.*?)</ul>', r.text, re.S)
    assert faults, r.text
    assert "<li>row 3, Ann: must be a decimal number" in faults.group(1), faults.group(1)
    assert "<li>row 4, Cost: must be a decimal number" in faults.group(1)
    assert 'aria-describedby="f-file-hint f-file-error f-file-faults"' in r.text
    r = send(ann, "bills.json", b'{"not": "an export"}', "application/json")
    refused(r.text, "file", "must be a quits export")
    r = send(ann, "trip.csv", SPLITWISE, "text/csv", me="Ann", currency="EURO")
    refused(r.text, "currency", "3-letter")
    r = ann.post("/import", {"idem": "web-nofile"}, files={"file": ("", b"", "application/octet-stream")})
    refused(r.text, "file", "Choose the file")
    assert counts(clean_db, WRITES) == before


def test_double_submission_imports_once(ann: Person, clean_db: URL) -> None:
    key = idem_of(ann.get("/import").text)
    fields = {"idem": key, "me": "Ann", "name": "Paris"}
    first = ann.post("/import", fields, files={"file": ("trip.csv", SPLITWISE, "text/csv")})
    second = ann.post("/import", fields, files={"file": ("trip.csv", SPLITWISE, "text/csv")})
    assert first.status_code == second.status_code == 303, (first.text, second.text)
    assert first.headers["location"] == second.headers["location"]
    assert counts(clean_db, ("groups",))["groups"] == 1
    other = ann.post("/import", {**fields, "name": "Rome"}, files={"file": ("trip.csv", SPLITWISE, "text/csv")})
    assert other.status_code == 409 and "already used to save something else" in other.text
    assert counts(clean_db, ("groups",))["groups"] == 1


def test_a_file_over_the_limit_is_refused_next_to_the_field(settings: Settings, clean_db: URL) -> None:
    small = settings.model_copy(update={"import_max_body_bytes": 1024})
    with TestClient(create_app(small)) as c:
        ann = Person(c, "Ann").sign_up()
        big = SPLITWISE + b"\n" * 1024
        r = send(ann, "trip.csv", big, "text/csv", me="Ann", name="Paris")
        assert r.status_code == 413
        refused(r.text, "file", "larger than")
        assert send(ann, "trip.csv", SPLITWISE, "text/csv", me="Ann", name="Paris").status_code == 303
    assert counts(clean_db, ("groups",))["groups"] == 1


def test_a_file_larger_than_the_api_body_limit_imports(ann: Person, clean_db: URL, settings: Settings) -> None:
    """The import form has its route's own body limit (app.main), not the 256 KiB of every other request."""
    row = b"2024-01-05,Dinner,Dining out,30.00,EUR,20.00,-10.00,-10.00\n"
    big = b"Date,Description,Category,Cost,Currency,Ann,Ben,Cat\n" + row * (settings.max_body_bytes // len(row) + 10)
    assert settings.max_body_bytes < len(big) < settings.import_max_body_bytes
    r = send(ann, "big.csv", big, "text/csv", me="Ann", name="Big")
    assert r.status_code == 303, r.text[:500]
    assert counts(clean_db, ("expenses",))["expenses"] == big.count(b"\n") - 1
