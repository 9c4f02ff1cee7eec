from fastapi.testclient import TestClient

from app.infra.config import Settings
from app.main import create_app
from tests.api import Api, assert_problem


def test_health_ok(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok"}


def test_health_503_when_database_unreachable() -> None:
    settings = Settings(
        database_url="postgresql://postgres@127.0.0.1:1/nowhere",
        migrate_on_startup=False,
        db_connect_timeout_s=1.0,
        _env_file=None,  # type: ignore[call-arg]
    )
    with TestClient(create_app(settings)) as c:
        r = c.get("/health")
        assert r.status_code == 503
        assert r.json() == {"status": "degraded", "database": "unavailable"}
        # Writes fail cleanly too: a problem+json 503, never a stack trace.
        w = c.post("/v1/users", json={"name": "A", "email": "a@example.com"})
        body = assert_problem(w, 503)
        assert "Traceback" not in w.text and "127.0.0.1" not in body["detail"]


def test_unknown_route_is_problem_json(api: Api) -> None:
    assert_problem(api.client.get("/nope"), 404, "not-found")


def test_method_not_allowed_is_problem_json(api: Api) -> None:
    assert_problem(api.client.patch("/health"), 405, "method-not-allowed")


def test_validation_error_shape(api: Api) -> None:
    r = api.client.post("/v1/users", json={"name": "", "email": "not-an-email", "extra": 1})
    body = assert_problem(r, 422, "validation-error")
    locs = [tuple(e["loc"]) for e in body["errors"]]
    assert ("body", "email") in locs and ("body", "extra") in locs
    assert all(set(e) == {"loc", "msg"} for e in body["errors"])


def test_malformed_json_is_422_problem(api: Api) -> None:
    r = api.client.post("/v1/users", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(r, 422)


def test_bad_path_uuid_is_422(api: Api) -> None:
    a = api.user()
    assert_problem(api.client.get("/v1/groups/not-a-uuid", headers=a.headers), 422)


def test_oversized_body_is_413_and_writes_nothing(api: Api) -> None:
    a = api.user()
    r = api.client.post("/v1/groups", content=b'{"name": "' + b"x" * 300_000 + b'"}', headers=a.headers)
    assert_problem(r, 413, "body-too-large")
