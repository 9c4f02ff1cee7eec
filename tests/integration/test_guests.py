"""Contract v2 guests: a person added by name takes part like anyone, and claims the place later with an
invite code, keeping their id and history."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.engine import URL

from tests.api import Api, Who, assert_problem
from tests.dbutil import ACCOUNT_TABLES, counts, run_sql


def _guest(api: Api, who: Who, gid: str, name: str = "Guest") -> dict[str, Any]:
    r = api.client.post(f"/v1/groups/{gid}/members", json={"name": name}, headers=who.headers)
    assert r.status_code == 201, r.text
    return next(m for m in r.json()["members"] if m["guest"] and m["name"] == name)


def test_a_guest_takes_part_like_anyone(api: Api) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    g = _guest(api, a, gid, "Zoe")
    assert g["email"] is None
    members = api.client.get(f"/v1/groups/{gid}/members", headers=b.headers).json()
    assert {(m["user_id"], m["guest"]) for m in members} == {(a.id, False), (b.id, False), (g["user_id"], True)}
    guest = Who(g["user_id"], "no-token", "")
    api.expense(a, gid, "30.00", guest, [a, b, guest])  # the guest paid
    api.settle(a, gid, a, guest, "10.00")
    assert api.nets(a, gid) == {a.id: "0.00", b.id: "-10.00", g["user_id"]: "10.00"}


def test_bad_member_bodies_are_422_and_write_nothing(api: Api, clean_db: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a)
    before = counts(clean_db)
    for body in ({"name": "X", "email": b.email}, {"name": ""}, {"name": "   "}, {"name": "x" * 101}, {}):
        assert_problem(api.client.post(f"/v1/groups/{gid}/members", json=body, headers=a.headers), 422)
    assert counts(clean_db) == before


def _invite(api: Api, who: Who, gid: str, user_id: str) -> Any:
    return api.client.post(f"/v1/groups/{gid}/members/{user_id}/invite", headers=who.headers)


def test_invite_and_claim_keep_the_id_and_history(api: Api, clean_db: URL) -> None:
    a = api.user()
    gid = api.group(a)
    g = _guest(api, a, gid)
    api.expense(a, gid, "20.00", a, [a, Who(g["user_id"], "", "")])
    r = _invite(api, a, gid, g["user_id"])
    assert r.status_code == 201, r.text
    code, expires = r.json()["invite_code"], dt.datetime.fromisoformat(r.json()["expires_at"])
    assert dt.timedelta(days=6, hours=23) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=7)
    claim = {"invite_code": code, "email": "zoe@example.com", "name": "Zoe", "password": "correct horse 42"}
    c = api.client.post("/v1/users/claim", json=claim)
    assert c.status_code == 201, c.text
    assert c.json()["id"] == g["user_id"] and c.json()["email"] == "zoe@example.com" and c.headers["Location"]
    zoe = Who(g["user_id"], c.json()["api_token"], "zoe@example.com")
    assert api.client.get("/v1/users/me", headers=zoe.headers).json()["id"] == g["user_id"]
    assert api.nets(zoe, gid) == {a.id: "10.00", g["user_id"]: "-10.00"}  # the history is theirs
    members = api.client.get(f"/v1/groups/{gid}/members", headers=zoe.headers).json()
    assert next(m for m in members if m["user_id"] == g["user_id"])["guest"] is False
    login = api.client.post("/v1/sessions", json={"email": "zoe@example.com", "password": "correct horse 42"})
    assert login.status_code == 201
    feed = api.client.get(f"/v1/groups/{gid}/activity", headers=a.headers).json()["items"]
    assert (feed[0]["type"], feed[0]["user_id"], feed[0]["actor_id"]) == ("member.claimed", zoe.id, zoe.id)
    before = counts(clean_db) | counts(clean_db, ACCOUNT_TABLES)
    again = api.client.post("/v1/users/claim", json={**claim, "email": "other@example.com"})
    assert_problem(again, 422, "invalid-invite")
    assert counts(clean_db) | counts(clean_db, ACCOUNT_TABLES) == before


def test_bad_claims_write_nothing(api: Api, clean_db: URL) -> None:
    a = api.user()
    gid = api.group(a)
    g = _guest(api, a, gid)
    code = _invite(api, a, gid, g["user_id"]).json()["invite_code"]
    expired = _invite(api, a, gid, g["user_id"]).json()["invite_code"]
    run_sql(clean_db, "UPDATE invites SET expires_at = now() - interval '1 second' WHERE expires_at = "
                      "(SELECT max(expires_at) FROM invites)")  # fmt: skip
    before = counts(clean_db) | counts(clean_db, ACCOUNT_TABLES)
    cases = [
        ({"invite_code": "qi_nope", "email": "n@example.com"}, 422, "invalid-invite"),
        ({"invite_code": "nonsense", "email": "n@example.com"}, 422, "invalid-invite"),
        ({"invite_code": expired, "email": "n@example.com"}, 422, "invalid-invite"),
        ({"invite_code": code, "email": a.email.upper()}, 409, "email-taken"),
        ({"invite_code": code, "email": "n@example.com", "password": "aaaaaaaa"}, 422, "validation-error"),
        ({"invite_code": code, "email": "not-an-email"}, 422, "validation-error"),
    ]
    for body, status, slug in cases:
        assert_problem(api.client.post("/v1/users/claim", json=body), status, slug)
    assert counts(clean_db) | counts(clean_db, ACCOUNT_TABLES) == before
    assert api.client.post("/v1/users/claim", json={"invite_code": code, "email": "n@example.com"}).status_code == 201


def test_only_a_guest_member_can_be_invited(api: Api, clean_db: URL) -> None:
    a, b, outsider = api.user(), api.user(), api.user()
    gid = api.group(a, members=(b,))
    g = _guest(api, a, gid)
    before = counts(clean_db)
    assert_problem(_invite(api, a, gid, b.id), 409, "not-a-guest")
    assert_problem(_invite(api, a, gid, str(uuid.uuid4())), 404)
    assert_problem(_invite(api, outsider, gid, g["user_id"]), 404)
    assert counts(clean_db) == before
