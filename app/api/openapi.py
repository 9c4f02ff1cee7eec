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

from app.api.openapi_accounts import ACCOUNT_DECISIONS, ACCOUNT_ERRORS
from app.api.openapi_recurring import RECURRING_DECISIONS, RECURRING_ERRORS
from app.api.pagination import MAX_CURSOR_LENGTH, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX
from app.api.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE
from app.core.money import MONEY_PATTERN
from app.domain.idempotency import HEADER as IDEMPOTENCY_HEADER
from app.domain.idempotency import MAX_KEY_LENGTH, REPLAYED_HEADER
from app.infra.config import Settings

BODY_LIMIT_KIB = Settings.model_fields["max_body_bytes"].default // 1024

BEARER_SCHEME = "bearerAuth"
PROBLEM_REF = "#/components/schemas/Problem"
PUBLIC_OPERATIONS = frozenset({("post", "/v1/users"), ("post", "/v1/sessions"), ("post", "/v1/users/claim")})
"""Operations under /v1 that need no bearer token."""

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

DECISIONS = f"""
## Conventions

- **Auth**: `Authorization: Bearer <api_token>` on every `/v1` operation except `POST /v1/users`
  and `POST /v1/sessions` (which return a token, once). A missing, unknown or revoked token is a 401
  with `WWW-Authenticate: Bearer`. A group the caller is not a member of does not exist for them: 404.
- **Errors** are RFC 9457 problem details (`Content-Type: {PROBLEM_MEDIA_TYPE}`, schema `Problem`);
  `type` is `{PROBLEM_BASE}<slug>`. Validation errors are 422 and list `errors: [{{"loc", "msg"}}]`;
  a malformed path UUID, `limit` or body is a 422 too; a `cursor` the list did not issue or a bad
  `Idempotency-Key` is a 400.
  An unknown path is a 404, an undeclared method a 405, a request body over {BODY_LIMIT_KIB} KiB a 413
  (all problem details).
- **Money** is a decimal string (`{MONEY_PATTERN}`) with no more decimals than the group's currency
  has, at most 10^12 minor units; responses render the currency's full decimals, signed amounts
  (nets, ledger entries) with a leading `-`. Expense and settlement amounts must be greater than zero.
- **Text** fields (names, emails, descriptions, notes) must not contain NUL (U+0000): 422.
- **Lists** are newest first and keyset-paginated: `?limit=` (1..{PAGE_LIMIT_MAX}, default
  {PAGE_LIMIT_DEFAULT}) and the opaque `?cursor=` from the previous page's `next_cursor` (`null` on the last page).
- **Database unavailable** (or contention that outlasts the bounded retries): 503 problem with
  `Retry-After`; nothing was written. `GET /health` then answers 503
  `{{"status": "degraded", "database": "unavailable"}}`.

{ACCOUNT_DECISIONS}
{RECURRING_DECISIONS}
## Decisions the contract leaves open

- Any current member may record expenses and settlements, and edit or void any expense of the group.
- Voiding is idempotent: a second `DELETE` of an expense returns 200 with the same voided expense and
  posts nothing. Editing (`PUT`) a voided expense is a 409.
- Editing or voiding an expense whose payer or participants include a former member is a 409.
- `Idempotency-Key` values are kept at least 24 hours, per user; only committed requests are
  remembered, so a request rejected by validation leaves its key unused.
- Lists include voided expenses (with `voided_at` set).
- Every `201` carries `Location`: the new expense or settlement, `/v1/groups/{{id}}` for a group,
  `/v1/groups/{{id}}/members` for a new member, `/v1/users/me` for a registration.
- Expenses carry an `ETag`: `"<version>"`, or `"<version>-voided"` once voided. `PUT` and `DELETE`
  honour `If-Match` (a list of tags, or `*`; a weak tag never matches): when the expense's current
  tag is not listed, 412 `precondition-failed` and nothing is written. Without `If-Match`, an edit or
  void that races another applies to the latest version (the service re-reads and retries).
  A malformed `If-Match` is a 400 `invalid-header`.
- A `PUT` equal to the current version (same description, amount, payer, split type and owed
  amounts) writes nothing: 200 with the same body, `version` and `ETag`.
- `Idempotency-Key` is honoured on `PUT` and `DELETE` of an expense and `DELETE` of a settlement,
  with the rules of the `POST`s; a request that changes nothing (an edit equal to the current
  version, a second void) still claims its key, so a retry replays it and another request under the
  key is a 422.
- **Several payers**: give `paid_by` (one payer paying all) or `payers` (1..50 distinct members,
  each amount > 0, summing exactly to `amount`), never both or neither (422 at `payers`). A payer
  who is not a current member is a 422 at `paid_by` or `payers`. The ledger posts `+paid` to each
  payer and `-owed` to each participant (not netted per user).
- **Foreign currency**: `currency` other than the group's needs `exchange_rate` (group units per one
  unit of `currency`); in the group's currency it must be absent or exactly 1 (and is returned as
  null). Converted total half up; the owed parts, and separately the paid parts, by largest remainder
  over that total (ties by ascending user_id), so each sums exactly to `group_amount`. A total that
  converts to 0, or past 10^12 minor units of the group's currency, is a 422 at `amount`.
- **Dates**: `date` is `YYYY-MM-DD` between 1900-01-01 and 2999-12-31; it defaults to today (UTC) on
  create, and an edit without `date` keeps the expense's date. `since`/`until`/`category` filter the
  list (dates inclusive); a malformed filter is a 422.
- **Cursors** are bound to their list: the list, its group (or caller) and its filters. A cursor
  presented to another list, group or filter set is a 400 `invalid-cursor`.
- **History**: `GET .../expenses/{id}/versions` lists every version, oldest first, as the API returned
  it; a version is stored when it is replaced and never rewritten. A void is not a new version: the
  last item shows `voided_at`, and `updated_by`/`updated_at` stay those of the version (the activity
  feed says who voided it).
- **Settlement voids** post the exact negation of the settlement's entries (kind `reversal`, citing
  the settlement), whatever the balances are now; a settlement whose payer or payee is no longer a
  member cannot be voided (409 `settlement-not-voidable`). A second `DELETE` returns the same voided
  settlement and posts nothing. Settlements carry an `ETag` (`"1"`, `"1-voided"`) and honour
  `If-Match` on `DELETE`.
- **Balance limit**: a write that raises the group's sum of positive nets past 10^15 minor units is
  a 422 `balance-limit-exceeded` and writes nothing (that sum bounds every member's net, since nets
  sum to zero). It is checked against the committed balances with the write's own balance rows
  locked; writes that lower the sum (settlements, voids, expenses the other way) always pass.
- **Guests**: `POST .../members` with `{{"name"}}` alone adds a person without an account (`guest`
  true, `email` null, no token); they pay, owe and settle like anyone. Any member may create an
  invite for a guest (`POST .../members/{{user_id}}/invite`: a single-use code shown once, valid 7
  days; a member who is not a guest: 409 `not-a-guest`). `POST /v1/users/claim` (no bearer token)
  turns the guest into a full user with the same id, balances and history and returns a token; a
  code that is unknown, used, expired or whose guest was already claimed is a 422
  `invalid-invite`, an email already taken a 409; nothing is written then.
- **Activity**: every write records who did what (`type`, `actor_id`, the expense, settlement or
  member it concerns); items are never changed. Activity from before this feature was backfilled
  from the stored expenses, settlements and memberships (actor: the creator; `detail.backfilled`).
"""

IDEMPOTENCY_DESCRIPTION = (
    f"Optional. 1..{MAX_KEY_LENGTH} printable ASCII characters (0x20-0x7E), also accepted as an RFC 8941 "
    "quoted string; scoped to the authenticated user and kept at least 24 hours. Same key and same request "
    "(method, path and canonical JSON body): the original status and body are replayed with "
    f"`{REPLAYED_HEADER}: true` and nothing is written. Same key, different request: 422 "
    "`idempotency-key-reused`. Same key still in progress in another request: 409 `idempotency-key-in-use`. "
    "Any other value, the empty key included: 400 `invalid-idempotency-key`. Only committed requests are "
    "remembered: a request rejected by validation leaves the key unused. Without the header the request is "
    "simply not idempotent."
)

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details, served as application/problem+json.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "format": "uri",
            "description": f"{PROBLEM_BASE}<slug>, e.g. {PROBLEM_BASE}validation-error",
            "examples": [f"{PROBLEM_BASE}validation-error"],
        },
        "title": {"type": "string", "description": "Short summary of the status, e.g. Unprocessable Content"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "The HTTP status code"},
        "detail": {"type": "string", "description": "Human-readable explanation of this occurrence"},
        "errors": {
            "type": "array",
            "description": "Present on validation errors (422): one entry per invalid input.",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "description": 'Where the error is, e.g. ["body", "participants", 0, "amount"]',
                    },
                    "msg": {"type": "string"},
                },
            },
        },
    },
}

ERROR_DESCRIPTIONS: dict[str, str] = {
    "400": "Bad request: a bad `cursor` or `Idempotency-Key`",
    "401": "Missing or invalid bearer token",
    "403": "Forbidden",
    "404": "Not found, or not visible to the caller (a group they are not a member of)",
    "409": "Conflict",
    "413": f"`body-too-large`: the request body exceeds the configured limit (`max_body_bytes`, {BODY_LIMIT_KIB} KiB"
    " by default)",
    "422": "Invalid request (body, path or query parameter); nothing was written",
    "429": "Too many failed password attempts; retry after `Retry-After` seconds",
    "503": "Database unavailable, or contention persisted after bounded retries; retry after `Retry-After` seconds",
}

_KEY_IN_USE = "`idempotency-key-in-use`: a request with the same `Idempotency-Key` is still in progress; retry"
_KEY_400 = "`invalid-idempotency-key`: the `Idempotency-Key` is empty, too long or not printable ASCII"
_CURSOR_400 = "`invalid-cursor`: `cursor` is not a `next_cursor` this list issued"
_GROUP_404 = "`not-found`: no such group, or the caller is not a member of it"

OPERATION_ERRORS: dict[str, dict[str, str]] = {
    **ACCOUNT_ERRORS,
    **RECURRING_ERRORS,
    "post_user": {
        "409": "`email-taken`: a user with this email (compared case-insensitively) already exists",
        "422": (
            "`validation-error`: invalid name or email, a password shorter than 8 or longer than 128 characters "
            "or a weak one, or unknown fields; nothing was written"
        ),
    },
    "post_group": {"422": "`validation-error`: invalid name, or currency is not an active ISO 4217 code"},
    "get_groups": {"400": _CURSOR_400},
    "get_group": {"404": _GROUP_404},
    "post_member": {
        "404": "`not-found`: no such group (for the caller), or no registered user with that user_id or email",
        "409": (
            "`already-member`: the user is already a member of the group; `group-full`: the group already has "
            "the maximum number of members (`max_group_members`, 1000 by default)"
        ),
        "422": "`validation-error`: give exactly one of user_id or email",
    },
    "delete_member": {
        "404": "`not-found`: no such group (for the caller), or the user is not a member of it",
        "409": "`member-has-balance`: the member's net balance is not zero",
    },
    "post_expense": {
        "400": _KEY_400,
        "404": _GROUP_404,
        "409": _KEY_IN_USE,
        "422": (
            "`validation-error`: invalid expense (money grammar, split rules, payer or participant not a current "
            "member, currency not the group's), nothing was written and the `Idempotency-Key` stays unused; or "
            "`idempotency-key-reused`: the key was used with a different request"
        ),
    },
    "list_expenses": {"400": _CURSOR_400, "404": _GROUP_404},
    "get_expense": {"404": "`not-found`: no such group (for the caller), or no such expense in it"},
    "put_expense": {
        "404": "`not-found`: no such group (for the caller), or no such expense in it",
        "409": ("`expense-not-editable`: the expense is voided, or its payer or a participant is no longer a member"),
        "422": "`validation-error`: invalid expense (same rules as create); nothing was written",
    },
    "delete_expense": {
        "404": "`not-found`: no such group (for the caller), or no such expense in it",
        "409": "`expense-not-editable`: the expense's payer or a participant is no longer a member",
    },
    "post_settlement": {
        "400": _KEY_400,
        "404": _GROUP_404,
        "409": _KEY_IN_USE,
        "422": (
            "`validation-error`: invalid amount, the same user on both sides, or a side that is not a current "
            "member; `settlement-exceeds-balance`: amount > min(-net(from), net(to)); or `idempotency-key-reused`. "
            "Nothing was written"
        ),
    },
    "list_settlements": {"400": _CURSOR_400, "404": _GROUP_404},
    "get_balances": {"404": _GROUP_404},
    "get_ledger": {"400": _CURSOR_400, "404": _GROUP_404},
}
"""Per-operation wording of the error responses (operationId → status → description)."""

SUCCESS_DESCRIPTIONS = {"200": "OK", "201": "Created", "204": "No Content: done"}

RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 1},
}
WWW_AUTHENTICATE_HEADER = {"description": "Always `Bearer`.", "schema": {"type": "string", "enum": ["Bearer"]}}
REPLAYED_RESPONSE_HEADER = {
    "description": (
        f"`true` when this is the stored response of an earlier request with the same `{IDEMPOTENCY_HEADER}`; "
        "absent otherwise."
    ),
    "schema": {"type": "string", "enum": ["true"]},
}


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
    codes: set[str] = set()
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


def _document_responses(path: str, method: str, op: dict[str, Any]) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    for code in _error_codes(path, method, op):
        responses.setdefault(code, _problem_response(ERROR_DESCRIPTIONS[code]))
    for code, response in responses.items():
        if response.get("description") == "Successful Response" and code in SUCCESS_DESCRIPTIONS:
            response["description"] = SUCCESS_DESCRIPTIONS[code]
    specific = OPERATION_ERRORS.get(op.get("operationId", ""), {})
    for code, response in responses.items():
        if not code.startswith(("4", "5")) or (path == "/health" and code == "503"):
            continue
        response["description"] = specific.get(code) or ERROR_DESCRIPTIONS.get(code) or response["description"]
        # Error bodies are always problem details; FastAPI's HTTPValidationError never is what we send.
        response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}
        if code == "401":
            response.setdefault("headers", {})["WWW-Authenticate"] = WWW_AUTHENTICATE_HEADER
        if code in ("429", "503"):
            response.setdefault("headers", {})["Retry-After"] = RETRY_AFTER_HEADER
    if any(p["name"] == IDEMPOTENCY_HEADER for p in op.get("parameters", [])):
        for code, response in responses.items():
            if code.startswith("2"):
                response.setdefault("headers", {})[REPLAYED_HEADER] = REPLAYED_RESPONSE_HEADER
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
    dangling = {r for r in _refs(document) if r.rsplit("/", 1)[-1] not in schemas}
    if dangling:
        raise RuntimeError(f"OpenAPI document references missing schemas: {sorted(dangling)}")


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
    components["schemas"] = dict(sorted(schemas.items()))
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
