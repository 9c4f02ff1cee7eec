import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.api.problems import status_of
from app.core.errors import DomainError
from app.domain.idempotency import canonical_json, fingerprint, parse_key
from app.ledger.postings import LedgerInvariantError, check_balanced, expense_entries, negate, suggest_payments


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("abc", "abc"),
        ("a b", "a b"),
        ('"quoted"', "quoted"),
        ('"with \\"escape\\" \\\\"', 'with "escape" \\'),
        ("x" * 255, "x" * 255),
        ("~!@#$%^&*()", "~!@#$%^&*()"),
        (None, None),
    ],
)
def test_valid_keys(raw: str | None, key: str | None) -> None:
    assert parse_key(raw) == key


@pytest.mark.parametrize(
    "raw", ["", '""', "x" * 256, "caf\u00e9", "tab\there", '"open', '"bad\\escape"', '"a"b"', "\x00", "line\nbreak"]
)
def test_invalid_keys_are_400(raw: str) -> None:
    with pytest.raises(DomainError) as exc:
        parse_key(raw)
    assert status_of(exc.value) == 400


def test_canonical_json_sorts_keys_and_keeps_values_as_sent() -> None:
    assert canonical_json(b'{ "b": 1, "a": {"d": [1, 2.50], "c": "x"} }') == '{"a":{"c":"x","d":[1,2.50]},"b":1}'
    assert canonical_json(b'{"a": 2.0}') != canonical_json(b'{"a": 2}')
    assert canonical_json(b'{"a": "2"}') != canonical_json(b'{"a": 2}')
    assert fingerprint("POST", "/p", b'{"a":1,"b":2}') == fingerprint("POST", "/p", b'{ "b" : 2 , "a" : 1 }')
    assert fingerprint("POST", "/p", b'{"a":1}') != fingerprint("POST", "/q", b'{"a":1}')
    assert canonical_json(b'{"s": "\\u00e9"}') == canonical_json('{"s": "é"}'.encode())


def test_postings_must_balance() -> None:
    a, b = uuid.UUID(int=1), uuid.UUID(int=2)
    entries = expense_entries(a, 100, [(a, 50), (b, 50)])
    assert entries == [(a, 100), (a, -50), (b, -50)]
    assert negate(entries) == [(a, -100), (a, 50), (b, 50)]
    with pytest.raises(LedgerInvariantError):
        check_balanced([(a, 1), (b, -2)])
    with pytest.raises(LedgerInvariantError):
        expense_entries(a, 100, [(b, 99)])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=-(10**12), max_value=10**12), min_size=1, max_size=12))
def test_suggested_payments_settle_everything(values: list[int]) -> None:
    values.append(-sum(values))
    nets = {uuid.UUID(int=i + 1): v for i, v in enumerate(values)}
    pays = suggest_payments(nets)
    nonzero = sum(1 for v in nets.values() if v)
    assert len(pays) <= max(nonzero - 1, 0)
    left = dict(nets)
    for p in pays:
        assert p.amount_minor > 0 and p.from_user_id != p.to_user_id
        assert left[p.from_user_id] < 0 < left[p.to_user_id]
        left[p.from_user_id] += p.amount_minor
        left[p.to_user_id] -= p.amount_minor
    assert set(left.values()) <= {0}
    assert suggest_payments(dict(reversed(list(nets.items())))) == pays  # deterministic


def test_suggested_payments_refuse_unbalanced_nets() -> None:
    with pytest.raises(LedgerInvariantError):
        suggest_payments({uuid.UUID(int=1): 5})


def test_keys_in_flight_refuse_a_second_holder_until_released() -> None:
    from app.domain.idempotency import KeysInFlight

    keys = KeysInFlight()
    user, other = uuid.UUID(int=1), uuid.UUID(int=2)
    with keys.hold(user, "k"):
        with pytest.raises(DomainError) as exc:
            with keys.hold(user, "k"):
                pass
        assert status_of(exc.value) == 409 and exc.value.code == "idempotency-key-in-use"
        with keys.hold(other, "k"), keys.hold(user, None), keys.hold(user, None):
            pass  # another user's key, and requests without a key, are independent
    with keys.hold(user, "k"):
        pass
    assert len(keys) == 0
