"""Every use of the service's own code by the harness, in one place.

In-process (the tree this harness belongs to): the database URL helpers, which live in `app.infra.db`
after the layout change and in `app.db` before it (the first one found is used), and
`app.main.run_migrations`. Imports are lazy: `--help` and the option checks never load the app.

Another tree (the other side of `--ab`) is never imported: its migrations and its server run as
subprocesses with that tree as working directory and PYTHONPATH (`tree_env`, `migrate_tree`).
"""

from __future__ import annotations

import functools
import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Protocol, cast

from sqlalchemy.engine import URL

DB_MODULES = ("app.infra.db", "app.db")  # after, before the move of app/db.py to app/infra/db.py


class _DbModule(Protocol):
    def plain_url(self, url: URL) -> str: ...
    def normalise_url(self, raw: str) -> URL: ...
    def embedded_socket_url(self, data_dir: Path, database: str) -> URL: ...
    def stop_embedded(self, data_dir: Path) -> None: ...


@functools.cache
def _db() -> _DbModule:
    for name in DB_MODULES:
        try:
            return cast(_DbModule, importlib.import_module(name))
        except ModuleNotFoundError as exc:
            prefixes = {name.rsplit(".", i)[0] for i in range(name.count(".") + 1)}
            if exc.name not in prefixes:
                raise  # the module exists but one of its own imports failed
    raise ImportError(f"none of {', '.join(DB_MODULES)} found")


def plain_url(url: URL) -> str:
    """The libpq form of a database URL (for asyncpg.connect, pgbench and subprocesses)."""
    return _db().plain_url(url)


def normalise_url(raw: str) -> URL:
    return _db().normalise_url(raw)


def embedded_socket_url(data_dir: Path, database: str) -> URL:
    """Start (or join) the embedded PostgreSQL in data_dir; the URL of `database` on its Unix socket."""
    return _db().embedded_socket_url(data_dir, database)


def stop_embedded(data_dir: Path) -> None:
    _db().stop_embedded(data_dir)


def run_migrations(url: URL) -> None:
    """This tree's migrations, in this process."""
    from app.main import run_migrations as migrate

    migrate(url)


# ---- another tree: subprocesses only ------------------------------------------------------------

# Run with cwd and PYTHONPATH = the tree, so `app` is that tree's package and alembic reads that tree's
# alembic.ini and migrations/. The URL comes through the environment (no password on a command line).
_MIGRATE = """
import os
from sqlalchemy.engine import make_url
from app.main import run_migrations
run_migrations(make_url(os.environ["BENCH_MIGRATE_URL"]))
"""


def tree_env(tree: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a subprocess running the app of `tree` (its package first on sys.path)."""
    path = os.pathsep.join(p for p in (str(tree), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **(extra or {}), "PYTHONPATH": path}


def migrate_tree(tree: Path, url: URL) -> None:
    """`app.main.run_migrations` of `tree`, run by that tree's own code in a subprocess."""
    env = tree_env(tree, {"BENCH_MIGRATE_URL": url.render_as_string(hide_password=False)})
    done = subprocess.run([sys.executable, "-c", _MIGRATE], cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"migrations of {tree} failed ({done.returncode}):\n{done.stderr[-2000:]}")
