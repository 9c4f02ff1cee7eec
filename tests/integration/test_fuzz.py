"""Schemathesis fuzzing of the running app against the COMMITTED docs/openapi.yaml.

Every operation is fuzzed (positive and negative data, bounded and derandomized so CI is stable)
through the session `client` (in-process, lifespan running on the migrated test database). Before
each operation a fresh world is created (three members, a group, an expense) so generated requests
carry a real bearer token and, most of the time, real `group_id` / `expense_id` / `user_id` path
parameters: fuzzing reaches the handlers, not only the 401/404 paths.

Checks: no 5xx, response bodies and headers conform to the document, every status code and
content type is documented.
"""

from __future__ import annotations

import io
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
import urllib3
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case as GenericCase
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from urllib3 import HTTPHeaderDict

from app.infra.config import PROJECT_ROOT
from tests.api import Api, Who, assert_problem

SCHEMA_PATH = PROJECT_ROOT / "docs" / "openapi.yaml"
BASE_URL = "http://testserver"
MAX_EXAMPLES = 25
SEED = 20_251_126

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none", "mode": "all"},
        "phases": {"stateful": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_path(SCHEMA_PATH, config=CONFIG)
Case = GenericCase[Any]

# The current operation's world: real ids, read by the hooks at draw time, and the caller's token.
WORLD: dict[str, list[str]] = {}
AUTH_MARKER = "X-Fuzz-Auth"
AUTH_KINDS = ("valid", "valid", "valid", "valid", "valid", "missing", "bogus")
USER_ID_FIELDS = frozenset({"user_id", "paid_by", "from_user_id", "to_user_id"})
# Plausible values for fields whose random values are almost never valid (the group's currency is USD).
VALUE_CHOICES = {"currency": ["USD", "JPY"], "amount": ["10.00", "0.01", "7"]}


def _real_or_generated(name: str, value: Any) -> st.SearchStrategy[Any]:
    """Usually one of the world's real ids (so requests reach the handlers), sometimes the generated value."""
    real = WORLD.get(name, [])
    return st.sampled_from([*real, *real, value]) if real else st.just(value)


def _body_with_real_users(body: Any, key: str | None = None) -> st.SearchStrategy[Any]:
    if isinstance(body, dict):
        return st.fixed_dictionaries({k: _body_with_real_users(v, k) for k, v in body.items()})
    if isinstance(body, list):
        return st.tuples(*(_body_with_real_users(v, key) for v in body)).map(list)
    if key in USER_ID_FIELDS and isinstance(body, str):
        return _real_or_generated(f"body.{key}", body)
    if key in VALUE_CHOICES and isinstance(body, str):
        return st.sampled_from([*VALUE_CHOICES[key], body])
    return st.just(body)


@schema.hook
def flatmap_path_parameters(context: schemathesis.HookContext, path_parameters: dict[str, Any]) -> Any:
    if not path_parameters:
        return st.just(path_parameters)
    return st.fixed_dictionaries({k: _real_or_generated(k, v) for k, v in path_parameters.items()})


@schema.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> Any:
    """Member ids in bodies (paid_by, participants[].user_id, from/to_user_id, user_id): mostly real ones."""
    return _body_with_real_users(body)


@schema.hook
def flatmap_case(context: schemathesis.HookContext, case: Case) -> Any:
    """Mark how the request authenticates; mostly the caller's token, sometimes none or a bogus one."""

    def mark(kind: str) -> Case:
        case.headers[AUTH_MARKER] = kind
        return case

    return st.sampled_from(AUTH_KINDS).map(mark)


def authenticate(case: Case, token: str) -> None:
    """Apply the marked auth; cases from phases that skip the hooks (examples, coverage) get the real token."""
    headers = case.headers  # case-insensitive
    kind = headers.pop(AUTH_MARKER, "valid")
    headers.pop("Authorization", None)
    if kind == "valid":
        headers["Authorization"] = f"Bearer {token}"
    elif kind == "bogus":
        headers["Authorization"] = "Bearer not-a-real-token"


def _octets(text: str | bytes) -> bytes:
    return text.encode("latin-1") if isinstance(text, str) else text


class _ClientAdapter(requests.adapters.HTTPAdapter):
    """Send `requests` traffic through the session's TestClient (same event loop as its database engine)."""

    def __init__(self, client: TestClient) -> None:
        super().__init__()
        self.client = client

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        raw_body = request.body
        body = raw_body.encode() if isinstance(raw_body, str) else raw_body if isinstance(raw_body, bytes) else b""
        # Header values go out as latin-1 octets, as a real client would send them.
        headers = [(_octets(k), _octets(v)) for k, v in request.headers.items()]
        r = self.client.request(str(request.method), str(request.url), content=body, headers=headers)
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(r.content),
            headers=HTTPHeaderDict(r.headers.multi_items()),
            status=r.status_code,
            reason=r.reason_phrase,
            version=11,
            preload_content=False,
            decode_content=False,
        )
        return self.build_response(request, raw)


@pytest.fixture
def session(client: TestClient) -> requests.Session:
    s = requests.Session()
    adapter = _ClientAdapter(client)
    s.mount("http://", adapter)
    return s


@pytest.fixture
def world(api: Api) -> Who:
    """A clean database: ann (the caller), bob and cy in a USD group, dee registered but not a member,
    and one expense (ann paid 30.00 for ann and bob, so bob owes ann 15.00). Returns ann."""
    ann, bob, cy, dee = api.user("Ann"), api.user("Bob"), api.user("Cy"), api.user("Dee")
    gid = api.group(ann, members=(bob, cy))
    expense = api.expense(ann, gid, "30.00", ann, [ann, bob])
    WORLD.clear()
    WORLD.update(
        {
            "group_id": [gid],
            "expense_id": [expense.json()["id"]],
            "user_id": [cy.id, bob.id, ann.id],  # DELETE .../members/{user_id}: cy has a zero net
            "body.user_id": [dee.id, ann.id, bob.id, cy.id],  # members: dee can be added; participants
            "body.paid_by": [ann.id, bob.id],
            "body.from_user_id": [bob.id, ann.id],
            "body.to_user_id": [ann.id, cy.id],
        }
    )
    return ann


@schema.parametrize()
@hypothesis.settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_committed_openapi(case: Case, world: Who, session: requests.Session) -> None:
    authenticate(case, world.token)
    case.call_and_validate(base_url=BASE_URL, session=session, checks=CHECKS)


# ---- regressions for what the fuzzer found -----------------------------------------------------


def test_undecodable_body_is_a_422_problem(api: Api) -> None:
    """Invalid UTF-8 was FastAPI's bare 400 "error parsing the body"; malformed JSON is a 422 here."""
    a = api.user()
    for path in ("/v1/users", "/v1/groups"):
        r = api.client.post(path, content=b"\xff\xfe{", headers={**a.headers, "content-type": "application/json"})
        body = assert_problem(r, 422, "validation-error")
        assert body["errors"] == [{"loc": ["body"], "msg": "the body is not valid UTF-8 JSON"}]


def test_nul_in_text_is_a_422_problem_not_a_500(api: Api) -> None:
    """PostgreSQL text cannot hold U+0000: it used to reach the INSERT and fail with a 500."""
    assert_problem(api.client.post("/v1/users", json={"name": "A\u0000", "email": "a@example.com"}), 422)
    assert_problem(api.client.post("/v1/users", json={"name": "A", "email": "a\u0000@example.com"}), 422)
    a, b = api.user("Ann"), api.user("Bob")
    assert_problem(api.client.post("/v1/groups", json={"name": "\u0000", "currency": "USD"}, headers=a.headers), 422)
    gid = api.group(a, members=(b,))
    expense = {
        "description": "x\u0000",
        "amount": "1.00",
        "paid_by": a.id,
        "split_type": "equal",
        "participants": [{"user_id": a.id}],
    }
    assert_problem(api.client.post(f"/v1/groups/{gid}/expenses", json=expense, headers=a.headers), 422)
    api.expense(a, gid, "10.00", a, [a, b])
    settlement = {"from_user_id": b.id, "to_user_id": a.id, "amount": "1.00", "note": "\u0000"}
    assert_problem(api.client.post(f"/v1/groups/{gid}/settlements", json=settlement, headers=a.headers), 422)
    assert api.nets(a, gid) == {a.id: "5.00", b.id: "-5.00"}
