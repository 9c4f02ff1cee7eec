"""If-Match, one rule for every resource that carries an ETag (expenses, settlements, recurring rules)."""

from __future__ import annotations

from app.core.errors import DomainError


def require_tag(current: str, if_match: frozenset[str] | None) -> None:
    """If-Match: None (no header) or "*" proceed; otherwise the current ETag must be listed (412)."""
    if if_match is not None and "*" not in if_match and current not in if_match:
        raise DomainError("precondition-failed", f"If-Match does not match the current version {current}")
