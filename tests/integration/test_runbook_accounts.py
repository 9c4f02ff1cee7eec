"""The runbook with two roles: the embedded server makes them, migrations run as quits_owner, the service
as quits_app (with a CONNECTION LIMIT); the accounts migration keeps every user able to authenticate."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import uuid
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from app.infra.config import PROJECT_ROOT, Settings
from app.infra.db import embedded_socket_url, stop_embedded
from app.infra.roles import prepare_server
from app.main import create_app
from tests.dbutil import dsn, run_sql
from tests.integration.test_runbook import _alembic, _env, _revision, scratch_db

__all__ = ["scratch_db"]  # the fixture, shared with test_runbook

ACCOUNTS = "f9708ea38f85"
SCRIPTS = ScriptDirectory.from_config(Config(str(PROJECT_ROOT / "alembic.ini")))
BEFORE = str(SCRIPTS.get_revision(ACCOUNTS).down_revision)  # whatever this migration is chained to
HEAD = SCRIPTS.get_current_head()


def _sha(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _me(url: URL, token: str) -> int:
    settings = Settings(database_url=dsn(url), migrate_on_startup=False, _env_file=None)  # type: ignore[call-arg]
    with TestClient(create_app(settings)) as client:
        return client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"}).status_code


def test_accounts_migration_keeps_every_user_able_to_authenticate_both_ways(scratch_db: URL) -> None:
    assert _alembic("upgrade", BEFORE, url=scratch_db).returncode == 0
    users = {name: (uuid.uuid4(), f"qt_{name}_{uuid.uuid4().hex}") for name in ("ann", "bob")}
    for name, (user_id, token) in users.items():
        run_sql(
            scratch_db,
            "INSERT INTO users (id, name, email, token_hash) VALUES ($1, $2::text, $2::text || '@x.io', $3)",
            user_id,
            name,
            _sha(token),
        )
    up = _alembic("upgrade", "head", url=scratch_db)
    assert up.returncode == 0, up.stderr
    rows = run_sql(scratch_db, "SELECT user_id, name, token_hash, revoked_at FROM api_tokens")
    assert sorted((r["user_id"], r["name"], bytes(r["token_hash"]), r["revoked_at"]) for r in rows) == sorted(
        (user_id, "registration", _sha(token), None) for user_id, token in users.values()
    )
    assert _me(scratch_db, users["ann"][1]) == 200

    # Ann uses a newer token more recently; Bob revoked his registration token and has an unused one.
    ann, bob = users["ann"][0], users["bob"][0]
    add = "INSERT INTO api_tokens (id, user_id, name, token_hash, last_used_at) VALUES (gen_random_uuid(), $1, 'n', $2, $3)"
    run_sql(scratch_db, add, ann, _sha("qt_ann_new"), None)
    run_sql(scratch_db, "UPDATE api_tokens SET last_used_at = now() WHERE token_hash = $1", _sha("qt_ann_new"))
    run_sql(scratch_db, add, bob, _sha("qt_bob_new"), None)
    run_sql(scratch_db, "UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND name = 'registration'", bob)

    down = _alembic("downgrade", BEFORE, url=scratch_db)
    assert down.returncode == 0, down.stderr
    assert _revision(scratch_db) == BEFORE
    kept = {r["id"]: bytes(r["token_hash"]) for r in run_sql(scratch_db, "SELECT id, token_hash FROM users")}
    assert kept == {ann: _sha("qt_ann_new"), bob: _sha("qt_bob_new")}  # what the old code looks tokens up by
    assert _alembic("upgrade", "head", url=scratch_db).returncode == 0


def test_an_existing_database_is_handed_to_the_owner_role(scratch_db: URL) -> None:
    """A database migrated before the roles existed (by a superuser) is adopted by quits_owner, which can then
    run `alembic downgrade -1` and `alembic upgrade head` itself."""
    assert _alembic("upgrade", "head", url=scratch_db).returncode == 0
    asyncio.run(prepare_server(scratch_db, database=str(scratch_db.database)))
    owners = run_sql(
        scratch_db,
        "SELECT DISTINCT pg_get_userbyid(relowner) AS o FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " UNION SELECT DISTINCT pg_get_userbyid(proowner) FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
        " UNION SELECT DISTINCT pg_get_userbyid(typowner) FROM pg_type WHERE typnamespace = 'public'::regnamespace"
        " UNION SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()",
    )
    assert [r["o"] for r in owners] == ["quits_owner"]
    owner = scratch_db.set(username="quits_owner")
    for args in (("downgrade", "-1"), ("upgrade", "head")):
        result = _alembic(*args, url=owner)
        assert result.returncode == 0, result.stderr


def _run(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        cwd=PROJECT_ROOT,
        env=_env(EMBEDDED_DATA_DIR=str(data_dir)),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_embedded_runbook_makes_the_roles_and_migrates_as_the_owner(tmp_path: Path) -> None:
    """`alembic upgrade head`, `alembic downgrade -1`, `python -m app.verify` verbatim on a fresh embedded server."""
    data_dir = tmp_path / "pg"
    bin_dir = Path(sys.executable).parent
    for command in (["alembic", "upgrade", "head"], ["alembic", "downgrade", "-1"], ["alembic", "upgrade", "head"]):
        result = _run(str(bin_dir / command[0]), *command[1:], data_dir=data_dir)
        assert result.returncode == 0, result.stderr
    verify = _run(sys.executable, "-m", "app.verify", data_dir=data_dir)
    assert verify.returncode == 0 and "ok" in verify.stdout, verify.stdout + verify.stderr
    admin = embedded_socket_url(data_dir, "quits")
    try:
        roles = run_sql(
            admin,
            "SELECT rolname, rolsuper, rolconnlimit FROM pg_roles WHERE rolname LIKE 'quits%' ORDER BY rolname",
        )
        limit = int(run_sql(admin, "SHOW max_connections")[0]["max_connections"]) - 3 - 10
        assert [tuple(r.values()) for r in roles] == [("quits_app", False, limit), ("quits_owner", False, -1)]
        tables = run_sql(admin, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
        assert [r["tableowner"] for r in tables] == ["quits_owner"]
        assert _revision(admin) == HEAD
    finally:
        stop_embedded(data_dir)
