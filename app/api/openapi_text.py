"""The words of the OpenAPI document: the conventions and decisions (the document's description), the
problem schema, and the wording of each response and header. app.api.openapi puts them in place."""

from __future__ import annotations

from typing import Any

from app.api.edge import MAX_REQUEST_ID_LENGTH
from app.api.openapi_accounts import ACCOUNT_DECISIONS, ACCOUNT_ERRORS
from app.api.openapi_recurring import RECURRING_DECISIONS, RECURRING_ERRORS
from app.api.openapi_transfer import TRANSFER_DECISIONS, TRANSFER_ERRORS
from app.api.ops import METRICS_DESCRIPTION, STATIC_DOCS
from app.api.pagination import PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX
from app.api.problems import DATABASE_UNAVAILABLE_DETAIL, INTERNAL_ERROR_DETAIL, PROBLEM_BASE, PROBLEM_MEDIA_TYPE
from app.core.money import MONEY_PATTERN, SIGNED_MONEY_PATTERN
from app.core.splits import PERCENTAGE_PATTERN
from app.domain.idempotency import HEADER as IDEMPOTENCY_HEADER
from app.domain.idempotency import MAX_KEY_LENGTH, REPLAYED_HEADER
from app.infra.config import Settings

__all__ = ["MONEY_PATTERN", "PERCENTAGE_PATTERN", "SIGNED_MONEY_PATTERN"]  # the document shows them
BODY_LIMIT_KIB = Settings.model_fields["max_body_bytes"].default // 1024

DECISIONS = f"""
## Conventions

- **Auth**: `Authorization: Bearer <api_token>` on every `/v1` operation except `POST /v1/users`,
  `POST /v1/sessions` and `POST /v1/users/claim` (which return a token, once). A missing, unknown or
  revoked token is a 401 with `WWW-Authenticate: Bearer`. A group the caller is not a member of does
  not exist for them: 404.
- **Errors** are RFC 9457 problem details (`Content-Type: {PROBLEM_MEDIA_TYPE}`, schema `Problem`);
  `type` is `{PROBLEM_BASE}<slug>`. Validation errors are 422 and list `errors: [{{"loc", "msg"}}]`;
  a malformed path UUID, `limit` or body is a 422 too; a `cursor` the list did not issue or a bad
  `Idempotency-Key` is a 400.
  An unknown path is a 404, an undeclared method a 405 whose `Allow` lists every method of the path, a
  request body over {BODY_LIMIT_KIB} KiB a 413, declared or chunked (all problem details). A JSON body with the same
  key twice in one object is a 422 (parsers would silently keep one of the two).
- **Request ids**: every response carries `X-Request-ID`: the client's value when it sent one of
  1..{MAX_REQUEST_ID_LENGTH} printable ASCII characters, else a generated one. Every problem body carries it as
  `request_id`, and every log line of the request names it.
- **HEAD** works on every GET operation: the same status and headers, no body.
- **Path ids**: a UUID in a path may be spelled any way Python's `uuid.UUID` reads
  (uppercase, without dashes, in braces); it names the same resource, and for `Idempotency-Key` it is
  the same request.
- **CORS** is off unless the deployment lists origins (`CORS_ORIGINS`); for those, preflight requests
  are answered and `X-Request-ID`, `Retry-After`, `Idempotent-Replayed` are exposed.
- **Money** is a decimal string (`{MONEY_PATTERN}`) with no more decimals than the group's currency
  has, at most 10^12 minor units; responses render the currency's full decimals, signed amounts
  (nets, ledger entries) with a leading `-`. Expense and settlement amounts must be greater than zero.
- **Text** fields (names, emails, descriptions, notes) must not contain NUL (U+0000): 422.
- **Lists** are newest first and keyset-paginated: `?limit=` (1..{PAGE_LIMIT_MAX}, default
  {PAGE_LIMIT_DEFAULT}) and the opaque
  `?cursor=` from the previous page's `next_cursor` (`null` on the last page).
- **Database unavailable** (unreachable, starting up, too many connections, a connection lost, a pool or
  statement timeout) on any operation: 503 problem `database-unavailable` with `Retry-After`, never a
  500: "{DATABASE_UNAVAILABLE_DETAIL}". Contention that outlasts the bounded retries: 503 `try-again`,
  nothing was written. `GET /health` then answers 503 `{{"status": "degraded", "database": "unavailable"}}`.
- **500** (`internal-error`, a bug): "{INTERNAL_ERROR_DETAIL}".

## Operations

Not API operations (no schema below), public, for load balancers and operators:

- `GET /health`: liveness, as described below.
- `GET /health/ready`: readiness. 200 `{{"status": "ok", "database": "ok", "migrations": "ok"}}` when both
  connection pools (reads and multi-statement writes; the one-statement writes) answer within 2 s and the
  schema is at the head revision of the code's migrations; otherwise 503 with `Retry-After` and the same
  shape: `"status": "degraded"`, and `"database": "unavailable"` (`"migrations": "unknown"`) or
  `"database": "ok"` with `"migrations": "pending"` (behind: run `alembic upgrade head`) or `"unknown"` (a
  revision this code does not have), `"revision"` (the database's, null if never migrated) and `"head"`.
- `GET /metrics`: {METRICS_DESCRIPTION}
- `GET /docs` (Swagger UI) and `GET /redoc` (ReDoc): this document, with every asset served by the
  service itself under `{STATIC_DOCS}` (nothing from a CDN).

{ACCOUNT_DECISIONS}
{RECURRING_DECISIONS}
{TRANSFER_DECISIONS}
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
    "Any other value, the empty key included, or the header sent more than once: 400 `invalid-idempotency-key`. "
    "The path is compared with its ids in canonical form, so any spelling of a UUID is the same request. Only "
    "committed requests are remembered: a request rejected by validation leaves the key unused. Without the "
    "header the request is simply not idempotent."
)

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": (
        "RFC 9457 problem details, served as application/problem+json. Every problem also carries "
        "`request_id`: the request's `X-Request-ID`."
    ),
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
    "400": "Bad request: a bad `cursor` or `Idempotency-Key` (or the header sent twice)",
    "401": "Missing or invalid bearer token",
    "403": "Forbidden",
    "404": "Not found, or not visible to the caller (a group they are not a member of)",
    "409": "Conflict",
    "412": "`precondition-failed`: `If-Match` does not match the current version; nothing was written",
    "413": f"`body-too-large`: the request body exceeds the configured limit (`max_body_bytes`, {BODY_LIMIT_KIB} KiB"
    " by default)",
    "422": "Invalid request (body, path or query parameter; a JSON key twice in one object); nothing was written",
    "429": "Too many failed password attempts; retry after `Retry-After` seconds",
    "500": f"`internal-error`: {INTERNAL_ERROR_DETAIL}",
    "503": (
        "`database-unavailable`: the database is unreachable, starting up, out of connections, or a connection or "
        "pool timed out; `try-again`: contention persisted after bounded retries. Retry after `Retry-After` "
        "seconds (with the same `Idempotency-Key` for a write)"
    ),
}

_KEY_IN_USE = "`idempotency-key-in-use`: a request with the same `Idempotency-Key` is still in progress; retry"
_KEY_400 = (
    "`invalid-idempotency-key`: the `Idempotency-Key` is empty, too long or not printable ASCII, or sent more "
    "than once"
)
_CURSOR_400 = "`invalid-cursor`: `cursor` is not a `next_cursor` this list issued"
_GROUP_404 = "`not-found`: no such group, or the caller is not a member of it"

OPERATION_ERRORS: dict[str, dict[str, str]] = {
    **ACCOUNT_ERRORS,
    **RECURRING_ERRORS,
    **TRANSFER_ERRORS,
    "get_metrics": {"404": "`not-found`: metrics are off (`METRICS=false`)"},
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
REQUEST_ID_REF = {"$ref": "#/components/headers/X-Request-ID"}
REQUEST_ID_HEADER = {
    "description": (
        f"The request's id: the client's `X-Request-ID` when it sent 1..{MAX_REQUEST_ID_LENGTH} printable ASCII "
        "characters, else a generated one (also `request_id` in problem bodies and on every log line)."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_REQUEST_ID_LENGTH},
}
WWW_AUTHENTICATE_HEADER = {"description": "Always `Bearer`.", "schema": {"type": "string", "enum": ["Bearer"]}}
REPLAYED_RESPONSE_HEADER = {
    "description": (
        f"`true` when this is the stored response of an earlier request with the same `{IDEMPOTENCY_HEADER}`; "
        "absent otherwise."
    ),
    "schema": {"type": "string", "enum": ["true"]},
}
