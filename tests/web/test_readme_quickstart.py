"""The README's curl quickstart, run verbatim with bash against a live server of the app."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from sqlalchemy.engine import URL

from tests.concurrency.helpers import Server
from tests.web.conftest import PROJECT_ROOT, have_bash_tools

BLOCK = re.compile(r"<!-- quickstart:start -->\s*```sh\n(.*?)```\s*<!-- quickstart:end -->", re.S)


def quickstart() -> str:
    found = BLOCK.search((PROJECT_ROOT / "README.md").read_text(encoding="utf-8"))
    assert found, "README.md has no quickstart block between <!-- quickstart:start --> and <!-- quickstart:end -->"
    return found.group(1)


def test_the_readme_quickstart_runs(web_server: Server, clean_db: URL) -> None:
    missing = have_bash_tools()
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the README quickstart cannot run in CI: {missing}")
        pytest.skip(missing)
    script = "set -euo pipefail\n" + quickstart()
    done = subprocess.run(
        ["bash", "-c", script], env={**os.environ, "BASE": web_server.base_url}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert lines[0] == '["Ann","Bob"]' or lines[0] == '["Bob","Ann"]', lines
    statuses = [line.strip() for line in lines if line.startswith("HTTP/")]
    assert statuses == ["HTTP/1.1 201 Created", "HTTP/1.1 201 Created"], lines
    assert [line.lower().strip() for line in lines if line.lower().startswith("idempotent-replayed")] == [
        "idempotent-replayed: true"
    ], lines
    assert '"net":"30.00"' in done.stdout and '"net":"-30.00"' in done.stdout
    assert lines[-1] == '["0.00","0.00"]', lines
