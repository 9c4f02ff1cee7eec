"""The OpenAPI document's words on accounts and tokens (app.api.openapi merges them in)."""

from __future__ import annotations

ACCOUNT_DECISIONS = """
## Accounts and tokens

- A user has named API tokens (`GET`/`POST /v1/users/me/tokens`): registration makes one named
  "registration", each password login (`POST /v1/sessions`) one named "session". Tokens are stored as
  SHA-256 hashes and shown only when created. At most 100 live tokens per user (`max_tokens_per_user`).
- A revoked token (`DELETE /v1/users/me/tokens/{token_id}`) is refused at once by every worker (the
  revocation is announced with PostgreSQL NOTIFY as it commits), and within 500 ms
  (`token_cache_ttl_ms`, at most 1 s) by a worker that has lost that channel. `last_used_at` is
  written at most once a minute per token.
- Passwords are optional, 8..128 characters, and refused (422) when weak: one repeated character, a
  plain run (12345678, abcdefgh), the email or its part before @, a very common password. They are
  stored as Argon2id hashes. A wrong email and a wrong password are the same 401
  `invalid-credentials`, in the same time. Failed password checks are limited per account and per
  client address (429 `too-many-attempts` with `Retry-After`), counted in the database for all workers.
- Changing the password (`PUT /v1/users/me/password`) needs the current one when there is one; a wrong
  current password is a 403 `invalid-current-password` (the token itself is fine), and tokens stay valid.
"""

_TOO_MANY_TOKENS = "`too-many-tokens`: the user already has `max_tokens_per_user` (100) live tokens"
_TOO_MANY_ATTEMPTS = (
    "`too-many-attempts`: too many failed password checks for this account or client address in the current "
    "window (15 minutes by default); `Retry-After` says when the window ends"
)

ACCOUNT_ERRORS: dict[str, dict[str, str]] = {
    "post_session": {
        "401": "`invalid-credentials`: the email or the password is wrong (the same answer for both)",
        "409": _TOO_MANY_TOKENS + ' and none of them is a "session" token to replace',
        "422": "`validation-error`: email or password missing, empty, too long or not a string",
        "429": _TOO_MANY_ATTEMPTS,
    },
    "put_password": {
        "403": "`invalid-current-password`: `current_password` is wrong (counted as a failed login)",
        "409": "`password-changed`: another request changed the password meanwhile",
        "422": (
            "`validation-error`: `current_password` missing while the account has a password, or `new_password` "
            "too short, too long or weak; nothing was written"
        ),
        "429": _TOO_MANY_ATTEMPTS,
    },
    "post_token": {
        "409": _TOO_MANY_TOKENS + "; revoke one first",
        "422": "`validation-error`: name missing, blank or longer than 100 characters; nothing was written",
    },
    "delete_token": {
        "404": "`not-found`: no live token with this id belongs to the caller (another user's, unknown or revoked)",
        "422": "`validation-error`: token_id is not a UUID",
    },
}
"""Per-operation wording of the error responses of the account operations (operationId → status → text)."""
