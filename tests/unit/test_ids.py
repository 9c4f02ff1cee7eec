"""Unit tests for app.ids: version 7 UUIDs (RFC 9562)."""

from __future__ import annotations

import time
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from app.infra.ids import new_id, uuid7_from

MS = st.integers(min_value=0, max_value=(1 << 48) - 1)
RANDOM = st.integers(min_value=0, max_value=(1 << 74) - 1)


@settings(max_examples=300, deadline=None)
@given(MS, RANDOM)
def test_fields_round_trip(unix_ms: int, random_bits: int) -> None:
    u = uuid7_from(unix_ms, random_bits)
    assert u.version == 7
    assert u.variant == uuid.RFC_4122
    assert u.int >> 80 == unix_ms
    rand_a = (u.int >> 64) & 0xFFF
    rand_b = u.int & ((1 << 62) - 1)
    assert rand_a << 62 | rand_b == random_bits
    assert uuid.UUID(str(u)) == u


@settings(max_examples=300, deadline=None)
@given(MS, MS, RANDOM, RANDOM)
def test_a_later_millisecond_sorts_later_whatever_the_random_bits(t1: int, t2: int, r1: int, r2: int) -> None:
    a, b = uuid7_from(t1, r1), uuid7_from(t2, r2)
    if t1 < t2:
        assert a < b and str(a) < str(b)  # as PostgreSQL's uuid ordering and the text form agree


def test_new_ids_carry_the_current_time_and_do_not_repeat() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert all(i.version == 7 and before <= i.int >> 80 <= after for i in ids)
