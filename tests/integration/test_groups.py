import pytest
from sqlalchemy.engine import URL

from tests.api import Api, assert_problem
from tests.dbutil import counts


def test_create_group_caller_is_first_member(api: Api) -> None:
    a = api.user("Ann")
    r = api.client.post("/v1/groups", json={"name": "Trip", "currency": "JPY"}, headers=a.headers)
    assert r.status_code == 201
    g = r.json()
    assert set(g) == {"id", "name", "currency", "created_by", "created_at"}
    assert g["currency"] == "JPY" and g["created_by"] == a.id
    detail = api.client.get(f"/v1/groups/{g['id']}", headers=a.headers).json()
    assert detail["members"] == [{"user_id": a.id, "name": "Ann", "email": a.email, "guest": False}]  # v2: guest


@pytest.mark.parametrize("currency", ["usd", "US", "XYZ", "", "USDD", 840, None, "XXX"])
def test_invalid_currency_is_422_and_writes_nothing(api: Api, db_url: URL, currency: object) -> None:
    a = api.user()
    r = api.client.post("/v1/groups", json={"name": "G", "currency": currency}, headers=a.headers)
    assert_problem(r, 422)
    assert counts(db_url)["groups"] == 0


def test_list_groups_keyset_pagination_newest_first(api: Api) -> None:
    a, b = api.user(), api.user()
    mine = [api.group(a) for _ in range(5)]
    api.group(b)  # not visible to a
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = api.client.get("/v1/groups", params=params, headers=a.headers)
        assert r.status_code == 200
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [g["id"] for g in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(mine))


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 201}, {"limit": "x"}, {"cursor": "!!!"}, {"cursor": "dGVzdA"}, {"cursor": "x" * 300}],
)
def test_bad_limit_or_cursor_is_4xx_problem(api: Api, params: dict[str, object]) -> None:
    a = api.user()
    r = api.client.get("/v1/groups", params=params, headers=a.headers)
    assert r.status_code in (400, 422)
    assert_problem(r, r.status_code)


def test_default_and_max_page_size(api: Api) -> None:
    a = api.user()
    gid = api.group(a)
    for _ in range(3):
        api.expense(a, gid, "1.00", a, [a])
    r = api.client.get(f"/v1/groups/{gid}/expenses", params={"limit": 200}, headers=a.headers)
    assert len(r.json()["items"]) == 3 and r.json()["next_cursor"] is None


def test_non_member_sees_404_everywhere(api: Api) -> None:
    a, outsider = api.user(), api.user()
    gid = api.group(a)
    eid = api.expense(a, gid, "10.00", a, [a]).json()["id"]
    h = outsider.headers
    for method, path, body in [
        ("GET", f"/v1/groups/{gid}", None),
        ("GET", f"/v1/groups/{gid}/expenses", None),
        ("GET", f"/v1/groups/{gid}/expenses/{eid}", None),
        ("DELETE", f"/v1/groups/{gid}/expenses/{eid}", None),
        ("GET", f"/v1/groups/{gid}/settlements", None),
        ("GET", f"/v1/groups/{gid}/balances", None),
        ("GET", f"/v1/groups/{gid}/ledger", None),
        ("POST", f"/v1/groups/{gid}/members", {"user_id": outsider.id}),
        ("DELETE", f"/v1/groups/{gid}/members/{a.id}", None),
        ("POST", f"/v1/groups/{gid}/settlements", {"from_user_id": a.id, "to_user_id": outsider.id, "amount": "1"}),
        (
            "POST",
            f"/v1/groups/{gid}/expenses",
            {
                "description": "x",
                "amount": "1.00",
                "paid_by": a.id,
                "split_type": "equal",
                "participants": [{"user_id": a.id}],
            },
        ),
    ]:
        r = api.client.request(method, path, json=body, headers=h)
        assert_problem(r, 404)


def test_add_member_by_id_and_email(api: Api, db_url: URL) -> None:
    a, b, c = api.user("Ann"), api.user("Bob"), api.user("Cy")
    gid = api.group(a)
    r = api.client.post(f"/v1/groups/{gid}/members", json={"user_id": b.id}, headers=a.headers)
    assert r.status_code == 201
    r = api.client.post(f"/v1/groups/{gid}/members", json={"email": c.email.upper()}, headers=a.headers)
    assert r.status_code == 201
    assert sorted(m["user_id"] for m in r.json()["members"]) == sorted([a.id, b.id, c.id])
    assert_problem(
        api.client.post(f"/v1/groups/{gid}/members", json={"user_id": b.id}, headers=a.headers), 409, "already-member"
    )
    before = counts(db_url)
    assert_problem(
        api.client.post(
            f"/v1/groups/{gid}/members", json={"user_id": "00000000-0000-4000-8000-000000000000"}, headers=a.headers
        ),
        404,
    )
    assert_problem(api.client.post(f"/v1/groups/{gid}/members", json={"email": "no@x.io"}, headers=a.headers), 404)
    for bad in ({}, {"user_id": b.id, "email": b.email}, {"user_id": "nope"}):
        assert_problem(api.client.post(f"/v1/groups/{gid}/members", json=bad, headers=a.headers), 422)
    assert counts(db_url) == before


def test_remove_member_requires_zero_net(api: Api) -> None:
    a, b, c = api.user(), api.user(), api.user()
    gid = api.group(a, members=(b, c))
    api.expense(a, gid, "10.00", a, [a, b])
    assert_problem(api.client.delete(f"/v1/groups/{gid}/members/{b.id}", headers=a.headers), 409, "member-has-balance")
    assert api.client.delete(f"/v1/groups/{gid}/members/{c.id}", headers=a.headers).status_code == 204
    assert_problem(api.client.delete(f"/v1/groups/{gid}/members/{c.id}", headers=a.headers), 404)
    api.settle(a, gid, b, a, "5.00")
    assert api.client.delete(f"/v1/groups/{gid}/members/{b.id}", headers=a.headers).status_code == 204
    members = api.client.get(f"/v1/groups/{gid}", headers=a.headers).json()["members"]
    assert [m["user_id"] for m in members] == [a.id]
    # A removed member no longer sees the group.
    assert_problem(api.client.get(f"/v1/groups/{gid}", headers=b.headers), 404)


def test_group_member_limit(api: Api, settings: object) -> None:
    from fastapi.testclient import TestClient

    from app.infra.config import Settings
    from app.main import create_app

    assert isinstance(settings, Settings)
    small = settings.model_copy(update={"max_group_members": 2})
    with TestClient(create_app(small)) as c:
        small_api = Api(c)
        a, b, d = small_api.user(), small_api.user(), small_api.user()
        gid = small_api.group(a, members=(b,))
        r = c.post(f"/v1/groups/{gid}/members", json={"user_id": d.id}, headers=a.headers)
        assert_problem(r, 409, "group-full")
