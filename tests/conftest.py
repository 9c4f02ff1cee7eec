"""Fixtures: one migrated test database per run, emptied before every test; the app in-process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from app.infra.config import Settings
from app.main import create_app, run_migrations
from tests.api import Api
from tests.dbutil import assert_ledger_invariants, reset, test_database_url


@pytest.fixture(scope="session")
def db_url() -> URL:
    url = test_database_url()
    run_migrations(url)
    return url


@pytest.fixture(scope="session")
def settings(db_url: URL) -> Settings:
    return Settings(
        database_url=db_url.render_as_string(hide_password=False),
        migrate_on_startup=False,
        enable_test_hooks=True,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def clean_db(db_url: URL) -> URL:
    reset(db_url)
    return db_url


@pytest.fixture
def api(client: TestClient, clean_db: URL) -> Iterator[Api]:
    """The app over HTTP on an empty database; after the test, the ledger invariants must still hold."""
    yield Api(client)
    assert_ledger_invariants(clean_db)
