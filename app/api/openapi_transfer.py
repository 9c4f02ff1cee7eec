"""The OpenAPI document's words on export and import (app.api.openapi and app.api.transfer use them)."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from app.domain.transfer_schemas import IhatemoneyBill, QuitsExport

TRANSFER_DECISIONS = """
## Export and import

- **Export** (`GET /v1/groups/{id}/export?format=json|csv`, any member) streams from one read-only
  snapshot, in keyset batches (constant memory whatever the group's size). `json` is the `QuitsExport`
  document: `format` "quits", `version` 1, `exported_at`, `group`, `members` (as `GET .../members`),
  `expenses` (every expense, voided ones too, oldest first, each as `GET .../expenses/{id}` renders it
  plus `versions`: its superseded versions; an occurrence of a recurring rule keeps its `recurring_id`,
  though rules themselves are not exported), `settlements` (voided ones too) and `former_members`
  (people the records cite who have left; their email is withheld). `csv` has the columns Date,
  Description, Category, Cost, Currency, then one per person (current members by user_id, then former
  members the ledger cites) headed by the name (equal names: "Sam", "Sam #2"); one row per expense and
  settlement that is not voided, in the order they were recorded; each person's cell is the row's
  signed effect on their net in the group's currency, so each member's column sums to their net in
  `GET .../balances`. Cost is the total in the group's currency; a settlement's row is "A paid B",
  category "Payment", dated the day it was recorded (UTC). Text a spreadsheet would run as a formula
  (starting with `=`, `+`, `-`, `@`, tab or CR) gets a leading `'`. UTF-8 without a byte order mark,
  CRLF line ends (RFC 4180).
- **Import** (`POST /v1/groups/import`) creates a new group from a quits export (`application/json`, an
  object with `"format": "quits"`), an ihatemoney JSON bills export (`application/json`, an array) or a
  Splitwise CSV export (`text/csv`); another media type is a 415. The caller is a member; every other
  person in the file becomes a guest member (claimable later with an invite). `?me=<name>` says which
  person the caller is (exact name, else the only one equal ignoring case; several or none: 422 at
  `query.me`); in a quits export the caller's own user id is matched without it; a caller matched to
  nobody joins as one more member with no history. `?name=` names the group (default: the file's, or
  "Imported from ...") and `?currency=` gives the currency where the file has none (a quits export
  keeps its own; giving another is a 422).
- Numbers are read as the decimal they print as (`10.1` is 10.10), never through a binary float, and
  must fit the currency's decimals. Every person's net after the import is what the file implies, to
  the minor unit. A quits export comes back as an equal group: same records, amounts, versions, voids
  and timestamps; former members are made and removed again (their nets must be zero); an occurrence
  of a recurring rule comes back as an ordinary expense (`recurring_id` null: the rule is not in the
  file). ihatemoney's
  balances are exact fractions (amount x weight / total weight) that it rounds when it shows them;
  each bill's parts here are whole minor units, placed so that every member's net is that balance
  rounded half to even, and where those roundings do not add up to zero the fewest members whose exact
  balance is nearest a rounding boundary take the remainder: each is listed in `import.adjustments`.
  A member's weight is the `payer_weight` of their bills (1 if they never pay, as ihatemoney's own
  import does). A Splitwise row whose cells do not add up to zero (at most one minor unit per person
  in the row) has the remainder taken off one person of the row, whom the Total balance line says,
  or else the one with the largest cell; each is listed in `import.adjustments`; with a Total balance
  line every balance must come out exactly as it says. Rows that move no money are listed in
  `import.skipped`. One currency per group: a bill or row in another is a 422 (these files carry no
  exchange rates).
- Imported records keep their dates; created_by is the importer for ihatemoney and Splitwise records
  (which name no author) and the mapped person for a quits export. The import is recorded in the
  activity feed as the records' own events (actor: the importer, `detail.imported`: the source).
  Settlements are recorded as the file says, without the settle-up limit (as a void is not limited).
- All or nothing: a bad file is one 422 whose `errors` name each row and field at fault (`loc`:
  `["body", <record number>, <column>]` for CSV, the header being record 1; `["body", <index>, <field>]`
  for ihatemoney; `["body", "expenses", <index>, <field>, ...]` for a quits export), at most 100 listed;
  nothing is written. More than 100,000 rows (`import_max_rows`) is a 422 naming the limit; a body over
  20 MiB (`import_max_body_bytes`, this route's own limit) a 413. The whole group is written by one
  database statement in one transaction (`quits_group_import`), which posts every record through
  `quits_post_import`, a set-based writer with `quits_post`'s checks; a failure anywhere leaves
  nothing. `Idempotency-Key` is honoured; the request it remembers is the method, path, query, media
  type and the body's exact bytes. At most one import runs at a time per worker
  (`import_concurrency`), two exports (`export_concurrency`); past that, a 503 with `Retry-After`.
"""

_IMPORT_422 = (
    "`validation-error`: the file is not a quits, ihatemoney or Splitwise export, or rows or fields are at fault "
    "(each listed), or it has more than `import_max_rows` rows, or `?me=`/`?currency=`/`?name=` do not fit it; "
    "`balance-limit-exceeded`; `idempotency-key-reused`. Nothing was written"
)

TRANSFER_ERRORS: dict[str, dict[str, str]] = {
    "get_export": {
        "404": "`not-found`: no such group, or the caller is not a member of it",
        "422": "`validation-error`: `format` is neither json nor csv, or the group id is not a UUID",
        "503": "The database is unavailable, or this worker streams `export_concurrency` exports already; retry "
        "after `Retry-After` seconds",
    },
    "post_import": {
        "400": "`invalid-idempotency-key`: the `Idempotency-Key` is empty, too long or not printable ASCII",
        "409": "`idempotency-key-in-use`: a request with the same `Idempotency-Key` is still in progress; retry",
        "413": "`body-too-large`: the file exceeds `import_max_body_bytes` (20 MiB by default)",
        "415": "`unsupported-media-type`: send application/json (quits, ihatemoney) or text/csv (Splitwise)",
        "422": _IMPORT_422,
        "503": "The database is unavailable, or this worker runs `import_concurrency` imports already; retry after "
        "`Retry-After` seconds",
    },
}

EXPORT_DESCRIPTION = (
    "Any member. `json`: the whole group as a `QuitsExport` document (voided records and every version "
    "included), which `POST /v1/groups/import` reads back into an equal group. `csv`: one row per expense or "
    "settlement that is not voided, one column per person holding the row's signed effect on their net in the "
    "group's currency; each member's column sums to their net. Streamed from one snapshot."
)
IMPORT_DESCRIPTION = (
    "Creates a new group from a quits export, an ihatemoney JSON bills export (detected by shape) or a Splitwise "
    "CSV export; the caller is a member and every other person a guest member. Every person's net is what the "
    "file implies, to the minor unit; where the source's own rounding leaves a remainder, `import.adjustments` "
    "says who took it. All or nothing, in one transaction. `Idempotency-Key` compares the method, path, query, "
    "media type and the body's exact bytes. See the document's description, \"Export and import\"."
)


def add_file_schemas(schemas: dict[str, Any]) -> None:
    """The export document and ihatemoney's bills: files the routes stream or read raw, so FastAPI does not
    see them; their models (app.domain.transfer_schemas) are added here."""
    _, top = models_json_schema(
        [(QuitsExport, "serialization"), (IhatemoneyBill, "validation")], ref_template="#/components/schemas/{model}"
    )
    for name, schema in top["$defs"].items():
        schemas.setdefault(name, schema)
    schemas["IhatemoneyBills"] = {
        "type": "array",
        "description": "ihatemoney's JSON bills export: an array of bills, newest first.",
        "items": {"$ref": "#/components/schemas/IhatemoneyBill"},
    }
