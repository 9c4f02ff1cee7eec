"""The concurrency suite again, with every server reaching PostgreSQL through PgBouncer in transaction mode.

tests/concurrency is run in a subprocess with QUITS_TEST_VIA_PGBOUNCER=1: its conftest starts Debian's
pgbouncer (tests/pgbouncer.py: pool_mode = transaction, fewer server connections than clients) in front
of the same PostgreSQL as this run (the embedded server, or TEST_DATABASE_URL's), and every uvicorn it
starts runs with DATABASE_URL through it and DB_TRANSACTION_POOLER=true (docs/scaling.md). Without
pgbouncer the test is skipped, except in CI (CI=true), where it fails: .ci/run installs it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from app.infra.config import PROJECT_ROOT
from tests import pgbouncer

TIMEOUT_S = 900


def test_concurrency_suite_through_pgbouncer_in_transaction_mode() -> None:
    if not pgbouncer.available():
        message = f"no {pgbouncer.PGBOUNCER}: apt-get install pgbouncer"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (.ci/run installs it; CI must not skip this)")
        pytest.skip(message)
    env = {**os.environ, "QUITS_TEST_VIA_PGBOUNCER": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/concurrency"]
    run = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-20_000:]
    summary = output.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 30, summary  # the whole suite ran, not a few tests of it
    assert not re.search(r"\d+ (skipped|failed|error)", summary), summary
