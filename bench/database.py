"""PostgreSQL for the benchmark: the embedded server or an existing one, re-creation, migrations, teardown."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL

from bench import appref, log
from bench.machine import cpu_by_pid
from bench.options import Options

if TYPE_CHECKING:
    import psutil

POSTGRES_NAMES = ("postgres", "postmaster")


@dataclass(kw_only=True)
class Database:
    url: URL  # asyncpg driver URL
    embedded: bool
    data_dir: Path | None
    version: str = ""
    version_full: str = ""
    postmaster_pid: int | None = None

    @property
    def name(self) -> str:
        return self.url.database or ""

    def dsn(self, database: str | None = None) -> str:
        return appref.plain_url(self.url.set(database=database or self.url.database))

    def libpq_args(self, database: str) -> tuple[list[str], dict[str, str]]:
        """pgbench connection options and environment."""
        u = self.url
        host = u.host or u.query.get("host") or "localhost"
        port = str(u.port or u.query.get("port") or 5432)
        args = ["-h", str(host), "-p", port, "-U", u.username or "postgres", database]
        env = {"PGPASSWORD": u.password} if u.password else {}
        return args, env

    def postmasters(self) -> list[psutil.Process]:
        import psutil

        if self.postmaster_pid:
            with contextlib.suppress(psutil.Error):
                return [psutil.Process(self.postmaster_pid)]
        # unknown data directory: every PostgreSQL server on the machine
        found = []
        for p in psutil.process_iter(["name", "ppid"]):
            if p.info["name"] in POSTGRES_NAMES:
                with contextlib.suppress(psutil.Error):
                    if psutil.Process(p.info["ppid"]).name() not in POSTGRES_NAMES:
                        found.append(p)
        return found

    def cpu_seconds(self) -> dict[int, float]:
        """CPU seconds of the server: each postmaster with its reaped children, plus its live children."""
        import psutil

        out: dict[int, float] = {}
        for pm in self.postmasters():
            with contextlib.suppress(psutil.Error):
                t = pm.cpu_times()
                out[pm.pid] = float(t.user + t.system + t.children_user + t.children_system)
                out.update(cpu_by_pid(pm.children()))
        return out


async def _recreate(admin_dsn: str, name: str, drop_only: bool) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def recreate_database(db: Database, name: str, *, drop_only: bool = False) -> None:
    asyncio.run(_recreate(db.dsn("postgres"), name, drop_only))


async def _server_version(dsn: str) -> tuple[str, str, str | None]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    data_directory: str | None = None
    try:
        with contextlib.suppress(asyncpg.PostgresError):
            data_directory = str(await conn.fetchval("SHOW data_directory"))  # superusers only
        version = str(await conn.fetchval("SHOW server_version"))
        return version, str(await conn.fetchval("SELECT version()")), data_directory
    finally:
        await conn.close()


def _read_postmaster_pid(data_dir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    return None


def open_database(opts: Options) -> Database:
    """The server (embedded unless --database-url) with the bench database dropped and re-created, not migrated."""
    if opts.database_url:
        url = appref.normalise_url(opts.database_url)
        if not url.database or "bench" not in url.database:
            sys.exit(f"refusing to drop and re-create {url.database!r}: use a database name containing 'bench'")
        db = Database(url=url, embedded=False, data_dir=None)
    else:
        log(f"starting embedded PostgreSQL in {opts.data_dir}")
        url = appref.embedded_socket_url(opts.data_dir, "quits_bench")
        db = Database(url=url, embedded=True, data_dir=opts.data_dir)
        db.postmaster_pid = _read_postmaster_pid(opts.data_dir)
    log(f"re-creating database {db.name}")
    recreate_database(db, db.name)
    db.version, db.version_full, data_directory = asyncio.run(_server_version(db.dsn()))
    if db.postmaster_pid is None and data_directory:
        db.postmaster_pid = _read_postmaster_pid(Path(data_directory))
    return db


def setup_database(opts: Options) -> Database:
    """open_database, then this tree's migrations in this process."""
    db = open_database(opts)
    log("running migrations")
    appref.run_migrations(db.url)
    return db


def fresh_database(db: Database, tree: Path) -> None:
    """Drop and re-create the bench database, then migrate it with `tree`'s own migrations (a subprocess)."""
    recreate_database(db, db.name)
    log(f"running migrations of {tree}")
    appref.migrate_tree(tree, db.url)


def release_database(db: Database) -> None:
    if db.embedded and db.data_dir is not None:
        appref.stop_embedded(db.data_dir)


def postgres_report(db: Database) -> dict[str, str]:
    return {
        "version": db.version,
        "full": db.version_full,
        "where": "embedded, Unix socket" if db.embedded else "existing server (--database-url)",
    }
