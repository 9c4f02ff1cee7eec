"""Password rules (pure): what makes a password too weak to accept. Hashing lives in app.infra.passwords.

Length is checked by the wire model (8..128 characters); here are the rules that need more than a
length: a password made of one repeated character, a plain run ("12345678", "abcdefgh", "87654321"),
the account's email or its local part (any case), or one of the most common passwords.
"""

from __future__ import annotations

from itertools import pairwise

MIN_LENGTH = 8
MAX_LENGTH = 128

# The most common passwords of at least MIN_LENGTH characters (lower case; compared case-insensitively).
COMMON = frozenset(
    {
        "password",
        "password1",
        "password123",
        "passw0rd",
        "12345678",
        "123456789",
        "1234567890",
        "87654321",
        "11111111",
        "00000000",
        "qwertyui",
        "qwertyuiop",
        "qwerty123",
        "1q2w3e4r",
        "1qaz2wsx",
        "asdfghjk",
        "zxcvbnm1",
        "iloveyou",
        "sunshine",
        "princess",
        "football",
        "baseball",
        "welcome1",
        "letmein1",
        "trustno1",
        "superman",
        "abc12345",
        "admin123",
        "changeme",
    }
)


def _is_run(password: str) -> bool:
    """Every character is the previous one plus one (abcd, 1234), or every one minus one (dcba, 4321)."""
    steps = {ord(b) - ord(a) for a, b in pairwise(password)}
    return steps in ({1}, {-1})


def weakness(password: str, *, email: str) -> str | None:
    """Why the password may not be used for the account with this email, or None when it may."""
    lowered = password.casefold()
    if len(set(password)) == 1:
        return "password must not be one repeated character"
    if _is_run(password):
        return "password must not be a plain run of characters such as 12345678 or abcdefgh"
    address = email.casefold()
    if lowered in (address, address.partition("@")[0]):
        return "password must not be the email address or its part before @"
    if lowered in COMMON:
        return "password is one of the most common passwords"
    return None
