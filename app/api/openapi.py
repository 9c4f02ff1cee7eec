"""The OpenAPI document: FastAPI's, completed with what the routers cannot express.

`install(app)` replaces `app.openapi` with a generator that adds the RFC 9457 `Problem` schema, the
bearer security scheme, the error responses every operation can return (all `application/problem+json`),
the response headers (`WWW-Authenticate`, `Retry-After`, `Idempotent-Replayed`) and the documented
constraints of the query and header parameters. FastAPI's `HTTPValidationError` is removed: this API
reports validation errors as problem details. `docs/openapi.yaml` is exported from this document by
`scripts/export_openapi.py` and a test keeps the two in sync.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.openapi_text import (
    DECISIONS,
    ERROR_DESCRIPTIONS,
    IDEMPOTENCY_DESCRIPTION,
    OPERATION_ERRORS,
    PROBLEM_SCHEMA,
    REPLAYED_RESPONSE_HEADER,
    REQUEST_ID_HEADER,
    REQUEST_ID_REF,
    RETRY_AFTER_HEADER,
    SUCCESS_DESCRIPTIONS,
    WWW_AUTHENTICATE_HEADER,
)
from app.api.openapi_transfer import add_file_schemas
from app.api.pagination import MAX_CURSOR_LENGTH, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX
from app.api.problems import PROBLEM_MEDIA_TYPE
from app.domain.idempotency import HEADER as IDEMPOTENCY_HEADER
from app.domain.idempotency import MAX_KEY_LENGTH, REPLAYED_HEADER

BEARER_SCHEME = "bearerAuth"
PROBLEM_REF = "#/components/schemas/Problem"
PUBLIC_OPERATIONS = frozenset({("post", "/v1/users"), ("post", "/v1/sessions"), ("post", "/v1/users/claim")})
"""Operations under /v1 that need no bearer token."""

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}}


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, {type: null}]` (FastAPI's rendering of `X | None`) → X, keeping the outer annotations."""
    branches = schema.get("anyOf")
    if not isinstance(branches, list):
        return schema
    kept = [b for b in branches if b != {"type": "null"}]
    if len(kept) != 1:
        return schema
    outer = {k: v for k, v in schema.items() if k not in ("anyOf", "title")}
    return {**kept[0], **outer}


def _document_parameters(op: dict[str, Any]) -> None:
    for param in op.get("parameters", []):
        name, where = param["name"], param["in"]
        if where == "query" and name == "limit":
            param["schema"] = {
                "type": "integer", "minimum": 1, "maximum": PAGE_LIMIT_MAX, "default": PAGE_LIMIT_DEFAULT
            }
            param["description"] = (
                f"Page size, 1..{PAGE_LIMIT_MAX} (default {PAGE_LIMIT_DEFAULT}). Out of range or not an integer: 422."
            )
        elif where == "query" and name == "cursor":
            param["schema"] = {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR_LENGTH}
            param["description"] = (
                "Opaque cursor: the `next_cursor` of the previous page of the same list. Longer than "
                f"{MAX_CURSOR_LENGTH} characters: 422; any other value this list did not issue: 400."
            )
        elif where == "header" and name == IDEMPOTENCY_HEADER:
            param["schema"] = {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_KEY_LENGTH,
                "pattern": "^[ -~]+$",
                "examples": ["4f9c2a1e-create-dinner"],
            }
            param["description"] = IDEMPOTENCY_DESCRIPTION
        elif "schema" in param:
            param["schema"] = _strip_null(param["schema"])


def _error_codes(path: str, method: str, op: dict[str, Any]) -> set[str]:
    """Every error status the operation can answer with (besides 405 for a method it does not have)."""
    codes: set[str] = {"500"}
    params = op.get("parameters", [])
    if params or "requestBody" in op:
        codes.add("422")
    if "requestBody" in op:
        codes.add("413")
    if path.startswith("/v1"):
        codes.add("503")
        if (method, path) not in PUBLIC_OPERATIONS:
            codes.add("401")
    if any(p["in"] == "path" for p in params):
        codes.add("404")
    names = {p["name"] for p in params}
    if IDEMPOTENCY_HEADER in names:
        codes.update({"400", "409"})
    if "cursor" in names:
        codes.add("400")
    return codes


HEALTH_PATHS = ("/health", "/health/ready")


def _document_responses(path: str, method: str, op: dict[str, Any]) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    for code in _error_codes(path, method, op):
        responses.setdefault(code, _problem_response(ERROR_DESCRIPTIONS[code]))
    for code, response in responses.items():
        if response.get("description") == "Successful Response" and code in SUCCESS_DESCRIPTIONS:
            response["description"] = SUCCESS_DESCRIPTIONS[code]
    specific = OPERATION_ERRORS.get(op.get("operationId", ""), {})
    for code, response in responses.items():
        if not code.startswith(("4", "5")):
            continue
        if code in ("429", "503"):
            response.setdefault("headers", {})["Retry-After"] = RETRY_AFTER_HEADER
        if path in HEALTH_PATHS and code == "503":  # their own bodies, not problems
            continue
        response["description"] = specific.get(code) or ERROR_DESCRIPTIONS.get(code) or response["description"]
        # Error bodies are always problem details; FastAPI's HTTPValidationError never is what we send.
        response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}
        if code == "401":
            response.setdefault("headers", {})["WWW-Authenticate"] = WWW_AUTHENTICATE_HEADER
    if any(p["name"] == IDEMPOTENCY_HEADER for p in op.get("parameters", [])):
        for code, response in responses.items():
            if code.startswith("2"):
                response.setdefault("headers", {})[REPLAYED_HEADER] = REPLAYED_RESPONSE_HEADER
    for response in responses.values():
        response.setdefault("headers", {})["X-Request-ID"] = REQUEST_ID_REF
    op["responses"] = dict(sorted(responses.items()))


def _document_security(path: str, method: str, op: dict[str, Any]) -> None:
    if path.startswith("/v1") and (method, path) not in PUBLIC_OPERATIONS:
        op["security"] = [{BEARER_SCHEME: []}]
    else:
        op["security"] = []


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


_NUMERIC_KEYWORDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})


def _integral_bounds(node: Any) -> Any:
    """FastAPI's OpenAPI model turns integer bounds into floats (1.0); render them as written (1)."""
    if isinstance(node, dict):
        return {
            k: int(v) if k in _NUMERIC_KEYWORDS and isinstance(v, float) and v.is_integer() else _integral_bounds(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_integral_bounds(v) for v in node]
    return node


def _drop_unused_validation_schemas(document: dict[str, Any]) -> None:
    schemas: dict[str, Any] = document["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    components: dict[str, Any] = document["components"]
    dangling = set()
    for ref in _refs(document):
        _, _, kind, name = ref.split("/", 3)
        if name not in components.get(kind, {}):
            dangling.add(ref)
    if dangling:
        raise RuntimeError(f"OpenAPI document references missing components: {sorted(dangling)}")


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=(app.description or "").rstrip() + "\n" + DECISIONS,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    add_file_schemas(schemas)
    components["schemas"] = dict(sorted(schemas.items()))
    components["headers"] = {"X-Request-ID": REQUEST_ID_HEADER}
    components["securitySchemes"] = {
        BEARER_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "`Authorization: Bearer <api_token>`, a token returned once by `POST /v1/users`, `POST /v1/sessions` "
                "or `POST /v1/users/me/tokens`."
            ),
        }
    }
    for path, item in document.get("paths", {}).items():
        for method in HTTP_METHODS:
            op = item.get(method)
            if op is None:
                continue
            _document_parameters(op)
            _document_responses(path, method, op)
            _document_security(path, method, op)
    _drop_unused_validation_schemas(document)
    # A plain tree (no shared sub-objects): safe to mutate, and dumps to YAML without anchors.
    plain: dict[str, Any] = _integral_bounds(json.loads(json.dumps(document)))
    return plain


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
