"""docs/openapi.yaml is what the app serves, and the document says what the contract requires.

Regenerate after changing a route or schema: `python scripts/export_openapi.py` (or `make openapi`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from app.api.openapi import OPERATION_ERRORS
from app.core.money import MONEY_PATTERN, SIGNED_MONEY_PATTERN
from app.infra.config import PROJECT_ROOT
from app.main import create_app
from scripts.export_openapi import DEFAULT_OUTPUT, render

METHODS = ("get", "put", "post", "delete", "patch")
PROBLEM_REF = "#/components/schemas/Problem"
REGENERATE = "docs/openapi.yaml is out of date: run `python scripts/export_openapi.py`"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    document: dict[str, Any] = create_app().openapi()
    return document


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(DEFAULT_OUTPUT.read_text(encoding="utf-8"))
    return document


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def param(op: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((p for p in op.get("parameters", []) if p["name"] == name), None)


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = dict(spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]])
    return node


def non_null(schema: dict[str, Any]) -> dict[str, Any]:
    branches = [b for b in schema.get("anyOf", [schema]) if b != {"type": "null"}]
    assert len(branches) == 1, schema
    return dict(branches[0])


# ---- in sync -----------------------------------------------------------------------------------


def test_committed_document_matches_the_app(spec: dict[str, Any], committed: dict[str, Any]) -> None:
    assert committed == spec, REGENERATE


def test_committed_file_is_byte_for_byte_the_export(spec: dict[str, Any]) -> None:
    assert DEFAULT_OUTPUT == PROJECT_ROOT / "docs" / "openapi.yaml"
    assert DEFAULT_OUTPUT.read_text(encoding="utf-8") == render(spec), REGENERATE


def test_export_is_deterministic() -> None:
    assert render(create_app().openapi()) == render(create_app().openapi())


def test_served_document_is_the_generated_one(spec: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    # Without `with`, the lifespan does not run: serving /openapi.json needs no database.
    r = TestClient(create_app()).get("/openapi.json")
    assert r.status_code == 200
    assert r.json() == spec


# ---- what the document must say ----------------------------------------------------------------


def test_problem_schema_and_no_fastapi_validation_error(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "errors"}
    item = problem["properties"]["errors"]["items"]
    assert set(item["required"]) == {"loc", "msg"}
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    text = yaml.safe_dump(spec)
    assert "HTTPValidationError" not in text and "#/components/schemas/ValidationError" not in text


def test_every_error_response_is_problem_json(spec: dict[str, Any]) -> None:
    for path, method, op in operations(spec):
        responses = op["responses"]
        errors = {code: r for code, r in responses.items() if code[0] in "45"}
        assert errors, f"{method.upper()} {path} documents no error responses"
        for code, response in errors.items():
            if path in ("/health", "/health/ready") and code == "503":
                assert response["content"]["application/json"]["schema"]["$ref"].endswith(("/Health", "/Readiness"))
                continue
            assert list(response["content"]) == ["application/problem+json"], (method, path, code)
            assert response["content"]["application/problem+json"]["schema"] == {"$ref": PROBLEM_REF}
        if path.startswith("/v1"):
            assert "503" in responses, (method, path)
            assert "Retry-After" in responses["503"]["headers"], (method, path)
        if op.get("parameters") or "requestBody" in op:
            assert "422" in responses, (method, path)
        if "requestBody" in op:
            assert "413" in responses, (method, path)
        if "{group_id}" in path:
            assert "404" in responses, (method, path)


def test_bearer_security_on_every_v1_operation_but_registration_and_login(spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert "security" not in spec  # no global default: every operation says what it needs
    for path, method, op in operations(spec):
        public = (method, path) in {("post", "/v1/users"), ("post", "/v1/sessions"), ("post", "/v1/users/claim")}
        public = public or not path.startswith("/v1")
        if public:
            assert op["security"] == [], (method, path)
            if (method, path) == ("post", "/v1/sessions"):  # its 401 is a wrong email or password, not a token
                assert "invalid-credentials" in op["responses"]["401"]["description"]
            else:
                assert "401" not in op["responses"], (method, path)
        else:
            assert op["security"] == [{"bearerAuth": []}], (method, path)
            unauthorized = op["responses"]["401"]
            assert unauthorized["headers"]["WWW-Authenticate"]["schema"]["enum"] == ["Bearer"], (method, path)


def test_idempotency_key_on_the_financial_writes_and_only_there(spec: dict[str, Any]) -> None:
    # Contract v2: the two POSTs, PUT and DELETE of an expense, DELETE of a settlement; recurring rules
    # (#16): POST, and (as for expenses) PUT and DELETE of a rule and its skip.
    expense = "/v1/groups/{group_id}/expenses/{expense_id}"
    rule = "/v1/groups/{group_id}/recurring/{rule_id}"
    idempotent = {
        ("post", "/v1/groups/{group_id}/expenses"),
        ("post", "/v1/groups/{group_id}/settlements"),
        ("put", expense),
        ("delete", expense),
        ("delete", "/v1/groups/{group_id}/settlements/{settlement_id}"),
        ("post", "/v1/groups/{group_id}/recurring"),
        ("put", rule),
        ("delete", rule),
        ("post", rule + "/skip"),
        ("post", "/v1/groups/import"),  # #14: a whole group in one write
    }
    for path, method, op in operations(spec):
        header = param(op, "Idempotency-Key")
        if (method, path) not in idempotent:
            assert header is None, (method, path)
            continue
        assert header is not None and header["in"] == "header" and header["required"] is False
        assert header["schema"]["minLength"] == 1 and header["schema"]["maxLength"] == 255
        for rule in ("24 hours", "idempotency-key-reused", "idempotency-key-in-use", "400", "RFC 8941"):
            assert rule in header["description"], rule
        assert {"400", "409", "422"} <= set(op["responses"])
        success = "201" if method == "post" and not path.endswith("/skip") else "200"  # a skip creates nothing
        assert "Idempotent-Replayed" in op["responses"][success]["headers"]


def test_pagination_parameters(spec: dict[str, Any]) -> None:
    paginated = [(path, op) for path, method, op in operations(spec) if method == "get" and param(op, "limit")]
    assert {path for path, _ in paginated} == {
        "/v1/groups",
        "/v1/groups/{group_id}/expenses",
        "/v1/groups/{group_id}/settlements",
        "/v1/groups/{group_id}/ledger",
        "/v1/groups/{group_id}/activity",  # Contract v2
        "/v1/groups/{group_id}/recurring",  # recurring rules (#16)
    }
    for path, op in paginated:
        limit, cursor = param(op, "limit"), param(op, "cursor")
        assert limit is not None and cursor is not None, path
        assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
        assert cursor["schema"]["type"] == "string"
        assert "400" in op["responses"] and "422" in op["responses"]
        page = resolve(spec, op["responses"]["200"]["content"]["application/json"]["schema"])
        assert set(page["properties"]) == {"items", "next_cursor"}
        assert "newest first" in (op.get("summary", "") + op.get("description", "")), path


def test_money_patterns(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert re.fullmatch(MONEY_PATTERN.strip("^$"), "12.34") and not re.fullmatch(MONEY_PATTERN.strip("^$"), "01")
    assert schemas["ExpenseIn"]["properties"]["amount"]["pattern"] == MONEY_PATTERN
    assert schemas["SettlementIn"]["properties"]["amount"]["pattern"] == MONEY_PATTERN
    assert non_null(schemas["ParticipantIn"]["properties"]["amount"])["pattern"] == MONEY_PATTERN
    for name in ("ExpenseOut", "SettlementOut", "ShareOut", "PaymentOut"):
        assert schemas[name]["properties"]["amount"]["pattern"] == MONEY_PATTERN, name
    assert schemas["BalanceOut"]["properties"]["net"]["pattern"] == SIGNED_MONEY_PATTERN
    assert schemas["LedgerEntryOut"]["properties"]["amount"]["pattern"] == SIGNED_MONEY_PATTERN


def test_open_decisions_are_written_down(spec: dict[str, Any]) -> None:
    ops = {op["operationId"]: op for _, _, op in operations(spec)}
    assert "second DELETE" in ops["delete_expense"]["description"]
    assert "200" in ops["delete_expense"]["description"]
    assert "voided expense" in ops["put_expense"]["description"] and "409" in ops["put_expense"]["description"]
    assert "Any member may" in ops["put_expense"]["description"]
    assert '"degraded"' in ops["health"]["description"] and '"unavailable"' in ops["health"]["description"]
    info = spec["info"]["description"]
    for decision in ("24 hours", "newest first", "second `DELETE`", "Any current member"):
        assert decision in info, decision


def test_operation_error_wording_refers_to_documented_responses(spec: dict[str, Any]) -> None:
    ops = {op["operationId"]: op for _, _, op in operations(spec)}
    for operation_id, codes in OPERATION_ERRORS.items():
        assert operation_id in ops, operation_id
        for code, description in codes.items():
            assert ops[operation_id]["responses"][code]["description"] == description, (operation_id, code)


def test_operation_ids_are_unique_handler_names(spec: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(spec)]
    # 17 of contract v1; v2 adds activity, members, expense versions, GET and DELETE of a settlement (5),
    # sessions, password change, token list, create and revoke (5), and a guest's invite and claim (2);
    # recurring rules (#16) add create, list, get, edit, stop and skip (6); #14 a group's export and the
    # import (2); #13 readiness and metrics (2).
    assert len(ids) == len(set(ids)) == 39
    assert all(re.fullmatch(r"[a-z_]+", i) for i in ids), ids


def test_account_operations_are_documented(spec: dict[str, Any]) -> None:
    ops = {op["operationId"]: (path, method, op) for path, method, op in operations(spec)}
    assert {"post_session", "put_password", "list_tokens", "post_token", "delete_token"} <= set(ops)
    assert ops["post_session"][2]["security"] == []
    for name in ("post_session", "put_password"):
        limited = ops[name][2]["responses"]["429"]
        assert "too-many-attempts" in limited["description"] and "Retry-After" in limited["headers"], name
    assert "invalid-current-password" in ops["put_password"][2]["responses"]["403"]["description"]
    assert "another user's" in ops["delete_token"][2]["responses"]["404"]["description"]
    for name in ("post_session", "post_token"):
        assert "Location" in ops[name][2]["responses"]["201"]["headers"], name
    listed = resolve(spec, ops["list_tokens"][2]["responses"]["200"]["content"]["application/json"]["schema"]["items"])
    assert set(listed["properties"]) == {"id", "name", "created_at", "last_used_at"}  # never the token
    password = spec["components"]["schemas"]["UserCreate"]["properties"]["password"]
    assert non_null(password)["minLength"] == 8 and non_null(password)["maxLength"] == 128
    info = spec["info"]["description"]
    for decision in ("Argon2id", "within 500 ms", "at most once a minute", "invalid-credentials"):
        assert decision in info, decision


def test_readiness_and_metrics_are_operations(spec: dict[str, Any]) -> None:
    ready, metrics = spec["paths"]["/health/ready"]["get"], spec["paths"]["/metrics"]["get"]
    assert (ready["operationId"], metrics["operationId"]) == ("health_ready", "get_metrics")
    assert ready["security"] == metrics["security"] == []  # public: restricted at the proxy
    for code in ("200", "503"):
        schema = resolve(spec, ready["responses"][code]["content"]["application/json"]["schema"])
        assert set(schema["properties"]) == {"status", "database", "migrations", "revision", "head"}
    assert "Retry-After" in ready["responses"]["503"]["headers"]
    assert [t.split(";")[0] for t in metrics["responses"]["200"]["content"]] == ["text/plain"]
    assert "METRICS=false" in metrics["responses"]["404"]["description"]


def test_export_and_import_are_documented(spec: dict[str, Any]) -> None:
    ops = {op["operationId"]: (path, method, op) for path, method, op in operations(spec)}
    export_path, _, export_op = ops["get_export"]
    assert export_path == "/v1/groups/{group_id}/export"
    assert set(export_op["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert param(export_op, "format")["schema"]["enum"] == ["json", "csv"]  # type: ignore[index]
    import_path, _, import_op = ops["post_import"]
    assert import_path == "/v1/groups/import" and import_op["security"] == [{"bearerAuth": []}]
    assert set(import_op["requestBody"]["content"]) == {"application/json", "text/csv"}
    assert {"201", "413", "415", "422", "503"} <= set(import_op["responses"])
    assert "Location" in import_op["responses"]["201"]["headers"]
    assert "20 MiB" in import_op["responses"]["413"]["description"]
    schemas = spec["components"]["schemas"]
    assert {"QuitsExport", "IhatemoneyBills", "ImportOut"} <= set(schemas)
    assert schemas["IhatemoneyBill"]["properties"]["amount"]["type"] == "number"
    assert "never a binary float" in schemas["IhatemoneyBill"]["properties"]["amount"]["description"]
    info = spec["info"]["description"]
    for decision in ("## Export and import", "adjustments", "half to even", "100,000 rows", "Total balance",
                     "former_members", "exact bytes"):  # fmt: skip
        assert decision in info, decision
