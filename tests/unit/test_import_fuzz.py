"""Whatever a file holds, a parser answers with a plan or one 422 (DomainError), never another exception
(which would be a 500): every field of a valid file replaced by any JSON value, any text as CSV."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.errors import DomainError
from app.domain.imports.run import plan_import
from tests.unit.test_import_parsers import FIXTURES, SPLITWISE, _doc, options

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.decimals(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            found += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _paths(v, (*path, i))
    return found


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    out = copy.deepcopy(doc)
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


def _answer(body: bytes, media: str, **kw: Any) -> None:
    try:
        plan_import(body, media, options(**kw))
    except DomainError:
        pass


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, default=str).encode()


QUITS = _doc()
# The export as ihatemoney wrote it: its numbers are read back here as floats only so that json.dumps writes
# them as numbers again, exactly as they were printed (10.1, 1200.0); the service itself never sees a float.
IHATEMONEY = json.loads((FIXTURES / "bills.json").read_text())


@FUZZ
@given(st.sampled_from(_paths(QUITS)), json_values)
def test_any_field_of_a_quits_document(path: tuple[Any, ...], value: Any) -> None:
    _answer(_dumps(_replace(QUITS, path, value)), "application/json")


@FUZZ
@given(st.sampled_from(_paths(IHATEMONEY)), json_values)
def test_any_field_of_an_ihatemoney_export(path: tuple[Any, ...], value: Any) -> None:
    _answer(_dumps(_replace(IHATEMONEY, path, value)), "application/json", currency="EUR")


@FUZZ
@given(st.integers(0, len(SPLITWISE)), st.text(max_size=20), st.sampled_from(["", "\x00", "\r", '"', ",,", "-", "1e3"]))
def test_any_text_in_a_splitwise_export(at: int, text: str, extra: str) -> None:
    body = SPLITWISE.format(ann="11.67", ben="1.67", cat="-13.34")
    _answer((body[:at] + text + extra + body[at:]).encode(), "text/csv")


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes(body: bytes) -> None:
    for media in ("application/json", "text/csv"):
        _answer(body, media)
