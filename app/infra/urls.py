"""PostgreSQL URLs: whatever form the operator writes, the asyncpg driver URL the service uses."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

ASYNC_DRIVER = "postgresql+asyncpg"
_PLAIN_SCHEMES = {"postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg2", "postgresql+psycopg"}


class DatabaseUrlError(ValueError):
    pass


def normalise_url(raw: str) -> URL:
    """`postgres://`, `postgresql://` and other PostgreSQL URLs → the asyncpg driver URL."""
    try:
        url = make_url(raw.strip())
    except Exception as exc:  # sqlalchemy raises ArgumentError with the URL in it
        raise DatabaseUrlError("DATABASE_URL is not a valid URL") from exc
    if url.drivername not in _PLAIN_SCHEMES:
        raise DatabaseUrlError(f"DATABASE_URL must be a PostgreSQL URL, got scheme {url.drivername!r}")
    query = dict(url.query)
    # libpq's sslmode is spelled ssl for asyncpg.
    if "sslmode" in query:
        query["ssl"] = query.pop("sslmode")
    return url.set(drivername=ASYNC_DRIVER, query=query)
