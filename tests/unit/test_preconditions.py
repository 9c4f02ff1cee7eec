from __future__ import annotations

import pytest

from app.core.errors import DomainError
from app.core.preconditions import require_tag


@pytest.mark.parametrize("if_match", [None, frozenset({"*"}), frozenset({'"3"'}), frozenset({'"2"', '"3"'})])
def test_no_header_a_star_or_the_current_tag_proceed(if_match: frozenset[str] | None) -> None:
    require_tag('"3"', if_match)


@pytest.mark.parametrize("if_match", [frozenset({'"2"'}), frozenset({'"3-voided"'}), frozenset({'W/"3"'})])
def test_any_other_list_is_412_naming_the_current_tag(if_match: frozenset[str]) -> None:
    with pytest.raises(DomainError) as caught:
        require_tag('"3"', if_match)
    assert caught.value.code == "precondition-failed" and '"3"' in caught.value.detail
