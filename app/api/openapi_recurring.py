"""The OpenAPI document's words on recurring expenses (app.api.openapi merges them in)."""

from __future__ import annotations

from app.core.calendar import MAX_COUNT, MAX_INTERVAL
from app.infra.config import Settings

MAX_DUE = Settings.model_fields["recurring_max_due"].default

RECURRING_DECISIONS = f"""
## Recurring expenses

- A rule (`POST .../recurring`) is an expense body (every field of an expense but `date`) and a
  `schedule`: `every` day, week, month or year, `interval` 1..{MAX_INTERVAL} (default 1), `start_date`, and
  at most one of `end_date` (inclusive) and `count` (1..{MAX_COUNT}; giving both is a 422, as in RFC
  5545). Dates are UTC, 1900-01-01..2999-12-31; a series also ends at 2999-12-31. Monthly on day 29-31
  falls on the month's last day in shorter months and returns to its day after (31 January, 28 or 29
  February, 31 March); yearly on 29 February falls on 28 February in common years. Any invalid field,
  of the body or of the schedule, is a 422 naming it, and nothing is written (the key stays unused).
- **Occurrences** are ordinary expenses: dated the occurrence's date, carrying `recurring_id`,
  listed, edited and voided like any other, made by the same validation and the same write (ledger
  entries, membership checks under the balance locks, the balance limit, `expense.created` in the
  activity with `detail.recurring_id` and `detail.occurrence_date`). Their `created_by` is the member
  who last set the rule's content (its `updated_by`).
- **Exactly once**: each (rule, occurrence date) is at most one expense, whatever the number of
  workers or hosts, through restarts and crashes. Every worker runs a scheduler; the statement that
  makes an occurrence also moves its rule on, and writes nothing unless the rule is still active, at
  the version read and due on that date; a unique index on (rule, occurrence date) is the final
  guard. Workers share the due rules with `FOR UPDATE SKIP LOCKED` claims and short leases.
- **Downtime**: occurrences due while no scheduler ran are all made on return, once each, earliest
  first, a bounded number per pass. A rule whose `start_date` is in the past makes its due
  occurrences within seconds of its creation; a new or edited rule that would owe more than {MAX_DUE}
  occurrences at once is a 422 at `schedule.start_date`.
- **Edits** (`PUT`, same body as create) apply to occurrences not yet made: expenses already made stay
  as they are. The rule goes on from the first date of the new schedule after the last occurrence
  made or skipped (none: 422 at `schedule`); `count` counts the new schedule's dates from its
  `start_date`. A `PUT` equal to the rule writes nothing.
- **Skip** (`POST .../{{rule_id}}/skip`) drops the next occurrence (`next_date`); skipped occurrences
  count towards `count`, and skipping the last one finishes the rule.
- **Stop**: `DELETE` stops a rule (`active` false, `stop_reason` `stopped`); it is kept and listed,
  never deleted, and the expenses it made stay. A rule also stops by itself, with `recurring.stopped`
  in the activity (`detail.reason`, `detail.message`, and `detail.occurrence_date` when an occurrence
  could not be made): `finished` after its last occurrence; `member-left` when a payer or participant
  is no longer a member; `author-left` when the member whose rule it is (its `updated_by`) left;
  `balance-limit-exceeded`; `invalid`. Nothing of that occurrence is written. A stopped rule cannot be
  edited or skipped (409 `recurring-stopped`); a second `DELETE` returns it as it is.
- Rules carry an `ETag` (`"<version>"`) that changes with every edit, skip, stop and occurrence made.
  `PUT`, `DELETE` and skip honour `If-Match` (412 `precondition-failed`, nothing written) and
  `Idempotency-Key`; a retry under the same key replays the first response even when the rule has
  changed since. Activity: `recurring.created`, `recurring.updated` (an edit; a skip with
  `detail.skipped`), `recurring.stopped`, each with `detail.recurring_id`.
"""

_RULE_404 = "`not-found`: no such group (for the caller), or no such recurring rule in it"
_KEY_IN_USE = "`idempotency-key-in-use`: a request with the same `Idempotency-Key` is still in progress; retry"
_STOPPED = (
    "`recurring-stopped`: the rule is stopped (by a member, finished, or because an occurrence could not be made); "
    f"or {_KEY_IN_USE}"
)

RECURRING_ERRORS: dict[str, dict[str, str]] = {
    "post_recurring": {
        "404": "`not-found`: no such group, or the caller is not a member of it",
        "409": _KEY_IN_USE,
        "422": (
            "`validation-error`: an invalid expense body (as for `POST .../expenses`, without `date`) or schedule "
            "(unknown `every`, `interval` outside 1..366, `end_date` before `start_date`, both `count` and "
            "`end_date`, `count` outside 1..10000, dates outside 1900..2999, too many occurrences already due), "
            "nothing written; or `idempotency-key-reused`"
        ),
    },
    "list_recurring": {"404": "`not-found`: no such group, or the caller is not a member of it"},
    "get_recurring": {"404": _RULE_404},
    "put_recurring": {
        "404": _RULE_404,
        "409": _STOPPED,
        "422": "`validation-error`: invalid body or schedule (as for create), or no occurrence left; nothing written",
    },
    "delete_recurring": {"404": _RULE_404, "409": _KEY_IN_USE},
    "skip_recurring": {"404": _RULE_404, "409": _STOPPED},
}
