"""Pure pieces of accounts: password rules, the token cache's expiry and bound, client address keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from time import monotonic

import pytest

from app.core.passwords import weakness
from app.domain.login_limits import address_key, attempt_for
from app.domain.users import TokenCache, UserRecord

EMAIL = "Ann.Lee@example.com"


@pytest.mark.parametrize(
    "password",
    [
        "aaaaaaaa",
        "########",
        "12345678",
        "98765432",
        "abcdefghij",
        "ZYXWVUTS",
        "ann.lee@example.com",
        "ANN.LEE",
        "Password",
        "QWERTYUIOP",
        "iloveyou",
    ],
)
def test_weak_passwords(password: str) -> None:
    assert weakness(password, email=EMAIL) is not None


@pytest.mark.parametrize(
    "password",
    ["correct horse battery staple", "aaaaaaab", "12345679", "ann.lee@example.co", "Tr0ub4dor&3", "é" * 7 + "è"],
)
def test_acceptable_passwords(password: str) -> None:
    assert weakness(password, email=EMAIL) is None


def _user() -> UserRecord:
    return UserRecord(id=uuid.uuid4(), name="n", email="e@x.io", created_at=datetime.now(UTC))


def test_token_cache_entries_expire_ttl_after_the_read_began() -> None:
    cache = TokenCache(size=10, ttl_s=0.5)
    user = _user()
    cache.put(b"k", user, read_at=monotonic())
    assert cache.get(b"k") is user
    cache.put(b"old", user, read_at=monotonic() - 0.5)  # a read that began half a second ago: already stale
    assert cache.get(b"old") is None
    cache.discard(b"k")
    assert cache.get(b"k") is None


def test_token_cache_is_bounded_and_a_zero_ttl_caches_nothing() -> None:
    cache = TokenCache(size=3, ttl_s=1.0)
    for i in range(10):
        cache.put(bytes([i]), _user(), read_at=monotonic())
    assert len(cache) == 3 and cache.get(bytes([9])) is not None and cache.get(bytes([0])) is None
    off = TokenCache(size=3, ttl_s=0)
    off.put(b"k", _user(), read_at=monotonic())
    assert len(off) == 0 and off.get(b"k") is None


def test_while_listening_entries_live_long_and_a_revocation_evicts_at_once() -> None:
    cache = TokenCache(size=10, ttl_s=0.5, listen_ttl_s=60)
    user = _user()
    cache.listening(True)
    cache.put(b"k", user, read_at=monotonic() - 30)  # read half a minute ago: still served while listening
    assert cache.get(b"k") is user
    cache.revoked(b"k")
    assert cache.get(b"k") is None
    cache.put(b"k", user, read_at=monotonic() - 1)  # a read begun before the revocation is never cached
    assert cache.get(b"k") is None
    cache.put(b"k2", user, read_at=monotonic())
    assert cache.get(b"k2") is user
    cache.listening(False)  # the listener was lost: forget everything, back to the short ttl
    assert cache.get(b"k2") is None
    cache.put(b"k2", user, read_at=monotonic() - 30)
    assert cache.get(b"k2") is None


def test_token_cache_ttl_is_at_most_one_second() -> None:
    with pytest.raises(AssertionError):
        TokenCache(size=3, ttl_s=1.5)


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
        (None, "unknown"),
    ],
)
def test_address_keys(host: str | None, key: str) -> None:
    assert address_key(host) == key


def test_account_subject_is_the_user_when_known_else_the_lowered_email() -> None:
    uid = uuid.uuid4()
    assert (
        attempt_for(user_id=uid, email="A@x.io", host="h").account
        == attempt_for(user_id=uid, email="other@x.io", host="h2").account
    )
    assert (
        attempt_for(user_id=None, email="A@X.io", host="h").account
        == attempt_for(user_id=None, email="a@x.io", host="h").account
    )
    assert (
        attempt_for(user_id=None, email="a@x.io", host="h").account
        != attempt_for(user_id=uid, email="a@x.io", host="h").account
    )
