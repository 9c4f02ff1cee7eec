"""Fixtures: one migrated test database per run, emptied before every test; the app in-process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from app.infra.config import Settings
from app.main import create_app
from tests.api import Api
from tests.dbutil import app_url, assert_ledger_invariants, owner_url, prepare_test_database, reset, test_database_url

# Argon2id parameters for the suite: about 20 ms a hash here instead of 160 ms (the defaults).
TEST_HASHING = {"password_hash_time_cost": 2, "password_hash_memory_kib": 16_384, "password_hash_parallelism": 1}


@pytest.fixture(scope="session")
def db_url() -> URL:
    """The test database as its superuser (for inspection and reset); the app itself runs as quits_app."""
    url = test_database_url()
    prepare_test_database(url)
    return url


@pytest.fixture(scope="session")
def settings(db_url: URL) -> Settings:
    return Settings(
        database_url=app_url(db_url).render_as_string(hide_password=False),
        migration_database_url=owner_url(db_url).render_as_string(hide_password=False),
        migrate_on_startup=False,
        enable_test_hooks=True,
        # The recurring scheduler runs only where a test starts it (or drives it: tests/integration/
        # test_recurring_scheduler.py), so that no pass races a test's own assertions.
        recurring_scheduler=False,
        _env_file=None,  # type: ignore[call-arg]
        **TEST_HASHING,
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
