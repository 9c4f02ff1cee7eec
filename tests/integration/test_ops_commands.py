"""Operator commands: `make clean-db` (refuses while the embedded server runs, or stops it first),
`alembic` and `python -m app.verify` say which database they use (never its password), and every
setting is bounded and listed in .env.example."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import URL

from app.infra.config import PROJECT_ROOT, Settings
from app.infra.db import normalise_url, safe_url
from tests.dbutil import dsn

BIN = Path(sys.executable).parent


def _clean_db(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMBEDDED_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "scripts/clean_db.py", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def _data_dir(tmp_path: Path, pid: int | None = None) -> Path:
    data = tmp_path / "pg"
    data.mkdir()
    (data / "PG_VERSION").write_text("18\n")
    (data / "base").mkdir()
    if pid is not None:
        (data / "postmaster.pid").write_text(f"{pid}\n{data}\n")
    return data


def test_clean_db_removes_a_stopped_servers_directory(tmp_path: Path) -> None:
    data = _data_dir(tmp_path, pid=2**22 + 4321)  # a stale pid file: no such process
    r = _clean_db(data)
    assert r.returncode == 0 and not data.exists(), r.stderr
    assert _clean_db(data).returncode == 0  # already gone: nothing to do


def test_clean_db_refuses_while_the_server_runs_or_stops_it_first(tmp_path: Path) -> None:
    postmaster = subprocess.Popen(["sleep", "60"])  # stands in for the running server
    try:
        data = _data_dir(tmp_path, pid=postmaster.pid)
        refused = _clean_db(data)
        assert refused.returncode == 1 and data.exists()
        assert f"pid {postmaster.pid}" in refused.stderr and "STOP=1" in refused.stderr
        stopped = _clean_db(data, "--stop")
        assert stopped.returncode == 0 and not data.exists(), stopped.stderr
        assert postmaster.wait(timeout=10) != 0  # it was signalled
    finally:
        postmaster.kill()
        postmaster.wait()


def test_clean_db_never_removes_something_else(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("precious")
    r = _clean_db(tmp_path)
    assert r.returncode == 1 and (tmp_path / "notes.txt").exists() and "PG_VERSION" in r.stderr


def test_make_clean_db_runs_the_script() -> None:
    dry = subprocess.run(["make", "-n", "clean-db", "STOP=1"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert dry.returncode == 0 and "scripts/clean_db.py --stop" in dry.stdout, dry.stdout + dry.stderr


def _password_url(db_url: URL) -> tuple[str, str]:
    password = "pw-never-printed-91c2"  # the test server trusts local connections: any password works
    url = db_url if db_url.host is None else db_url.set(password=password)
    return dsn(url), password


def test_alembic_and_verify_say_which_database(db_url: URL) -> None:
    raw, password = _password_url(db_url)
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"} | {"DATABASE_URL": raw}
    alembic = subprocess.run([str(BIN / "alembic"), "current"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    verify = subprocess.run([sys.executable, "-m", "app.verify"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    for r in (alembic, verify):
        assert r.returncode == 0, r.stderr
        out = r.stdout + r.stderr
        assert f"database {safe_url(normalise_url(raw))} (" in out, out
        assert password not in out


def test_safe_url_hides_passwords() -> None:
    url = normalise_url("postgresql://u:secret@h:5432/d?password=other&sslmode=require")
    shown = safe_url(url)
    assert "secret" not in shown and "other" not in shown and "u:***@h:5432/d" in shown and "ssl=require" in shown


@pytest.mark.parametrize(
    "bad",
    [
        {"log_format": "xml"},
        {"log_level": "chatty"},
        {"metrics_interval_s": 0},
        {"health_timeout_s": 60},
        {"cors_origins": "ftp://files.example"},
        {"cors_origins": "https://a.example/path"},
        {"cors_origins": ",".join(f"https://h{i}.example" for i in range(51))},
        {"db_application_name": "x" * 64},
        {"db_application_name": "tab\there"},
    ],
)
def test_new_settings_are_bounded(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **bad)  # type: ignore[arg-type, call-arg]


def test_every_setting_is_in_env_example() -> None:
    text = (PROJECT_ROOT / ".env.example").read_text()
    missing = [name.upper() for name in Settings.model_fields if f"{name.upper()}=" not in text]
    assert not missing, f".env.example does not mention {missing}"
