"""Domain errors: what went wrong, named by a stable code. Only app/api decides the HTTP status.

`code` is the problem slug the client sees (`.../problems/<code>`); `fields` point at the input at
fault, as paths inside the request body (the edge adds the "body" prefix); `retry_after_s`, when
set, is how long until the same request may succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class FieldError:
    path: Path
    msg: str
    where: str = "body"  # or "query", "path", "header"


class DomainError(Exception):
    """Raised anywhere below the edge; app.api.problems renders it as problem+json."""

    def __init__(
        self, code: str, detail: str, *, fields: Sequence[FieldError] = (), retry_after_s: int | None = None
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.fields = tuple(fields)
        self.retry_after_s = retry_after_s


def invalid(path: Path, msg: str) -> DomainError:
    """A rejected input value (the request is well-formed but its content breaks a rule)."""
    return DomainError("validation-error", msg, fields=[FieldError(path, msg)])


def not_found(what: str) -> DomainError:
    return DomainError("not-found", f"{what} not found")
