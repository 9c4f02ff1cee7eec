import pytest

from app.infra.db import DatabaseUrlError, normalise_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
        ("postgres://u:p@db:6543/x", "postgresql+asyncpg://u:***@db:6543/x"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+psycopg2://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql://postgres@/quits?host=/tmp/sock", "postgresql+asyncpg://postgres@/quits?host=%2Ftmp%2Fsock"),
        ("postgresql://u@h/d?sslmode=require", "postgresql+asyncpg://u@h/d?ssl=require"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert str(normalise_url(raw)) == expected


@pytest.mark.parametrize("raw", ["sqlite:///x.db", "mysql://u@h/d", "not a url", ""])
def test_rejects_other_databases(raw: str) -> None:
    with pytest.raises(DatabaseUrlError):
        normalise_url(raw)
