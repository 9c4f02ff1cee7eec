"""What a person reads when something is refused: domain codes and field errors → messages by field.

The services raise DomainError(code, detail, fields=[FieldError(path, msg)]) and Pydantic raises
ValidationError; the pages show each message next to its field (`Errors`, keyed by the form field's
name, "_form" for the form as a whole). Paths are turned into field names by the page's own `field_of`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from app.core.errors import DomainError, Path

FORM = "_form"
Errors = dict[str, str]
FieldOf = Callable[[Path], str]

# Codes whose message is better than the service's detail, and the field it belongs to (None: the form).
_BY_CODE: dict[str, tuple[str | None, str]] = {
    "email-taken": ("email", "An account with this email already exists: sign in instead."),
    "invalid-credentials": (None, "The email or the password is wrong."),
    "already-member": ("email", "This person is already a member of the group."),
    "group-full": (None, "The group is full: it cannot have more members."),
    "precondition-failed": (
        None,
        "Someone else changed this expense while you were editing it. Nothing was saved: here is the newer version.",
    ),
    "expense-not-editable": (
        None,
        "This expense cannot be changed: it was voided, or someone in it is no longer a member.",
    ),
    "settlement-not-voidable": (None, "This payment cannot be voided: someone in it is no longer a member."),
    "idempotency-key-reused": (
        None,
        "This form was already used to save something else. Nothing new was saved: reload the page to start again.",
    ),
    "idempotency-key-in-use": (None, "Your previous click is still being saved. Wait a moment, then reload."),
    "invalid-invite": ("invite_code", "This invite link is unknown, already used or expired: ask for a new one."),
    "member-has-balance": (None, "Only a member whose balance is zero can be removed."),
    "balance-limit-exceeded": (None, "This would take the group's balances past the largest amount it can hold."),
    "recurring-stopped": (None, "This recurring expense is stopped: nothing more can change in it. Set up a new one."),
    "not-a-guest": (None, "Only a guest can be invited to claim their place."),
    "try-again": (None, "The service is busy and nothing was saved. Please try again."),
    "database-unavailable": (None, "The service is unavailable and nothing was saved. Please try again shortly."),
    "not-found": (None, "Not found: it does not exist, or you are not a member of its group."),
}


def message_for(error: DomainError) -> str:
    if error.code == "too-many-attempts":
        return f"Too many failed attempts. Try again in {error.retry_after_s or 60} seconds."
    known = _BY_CODE.get(error.code)
    return known[1] if known else _sentence(error.detail)


_WIRE_NAMES = {
    "exchange_rate": "exchange rate",
    "from_user_id and to_user_id": "who paid and who was paid",
    "paid_by": "paid by",
    "split_type": "split",
    "start_date": "first date",
    "end_date": "end date",
    "current_password": "current password",
}


def _sentence(text: str) -> str:
    text = text.strip()
    for wire, human in _WIRE_NAMES.items():
        text = text.replace(wire, human)
    if not text:
        return "Something went wrong."
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def from_domain(error: DomainError, field_of: FieldOf) -> Errors:
    """Each field's message; a code without fields goes to its field or to the form."""
    errors: Errors = {}
    if error.fields and error.code in ("validation-error", "settlement-exceeds-balance"):
        for f in error.fields:
            name = field_of(f.path)
            errors.setdefault(name, _field_message(f.path, f.msg))
        return errors
    known = _BY_CODE.get(error.code)
    name = known[0] if known and known[0] else FORM
    errors[name] = message_for(error)
    return errors


def _field_message(path: Path, msg: str) -> str:
    """"amount must be ..." → "Amount must be ..."; a bare "must be ..." gets its field's name."""
    leaf = next((str(p) for p in reversed(path) if isinstance(p, str)), "")
    if msg.startswith(("must ", "should ")) and leaf:
        msg = f"{leaf.replace('_', ' ')} {msg}"
    return _sentence(msg)


_PYDANTIC: dict[str, str] = {
    "missing": "This is required.",
    "string_too_short": "This is required.",
    "string_type": "This is required.",
    "int_type": "Enter a whole number.",
    "int_parsing": "Enter a whole number.",
    "uuid_parsing": "Choose someone from the list.",
    "uuid_type": "Choose someone from the list.",
    "list_type": "This is required.",
}


def _pydantic_message(err: dict[str, Any]) -> str:
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    leaf = next((str(p) for p in reversed(err.get("loc", ())) if isinstance(p, str)), "")
    if kind == "string_too_long":
        return f"Use at most {ctx.get('max_length')} characters."
    if kind == "string_pattern_mismatch":
        hints = {
            "email": "Enter an email address like name@example.com.",
            "currency": "Enter a 3-letter currency code like USD.",
        }
        return hints.get(leaf, "Enter some text, not only spaces.")
    if kind == "too_short" and leaf == "participants":
        return "Choose at least one person."
    if kind == "too_long":
        return f"Choose at most {ctx.get('max_length')}."
    if kind == "value_error":
        return _sentence(str(err.get("msg", "")).removeprefix("Value error, "))
    return _PYDANTIC.get(kind, _sentence(str(err.get("msg", "invalid value"))))


def from_pydantic(error: ValidationError, field_of: FieldOf) -> Errors:
    errors: Errors = {}
    for err in error.errors():
        path = tuple(p if isinstance(p, int) else str(p) for p in err.get("loc", ()))
        errors.setdefault(field_of(path), _pydantic_message(dict(err)))
    return errors


def simple_field(path: Path) -> str:
    """The field of a flat form: the first element of the path ("email", "name", ...)."""
    return str(path[0]) if path else FORM
