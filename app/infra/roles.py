"""The two database roles: quits_owner owns the schema and runs migrations; quits_app is the service.

quits_app is no superuser and owns nothing, so it cannot ALTER, DROP or TRUNCATE a table, disable a
trigger or SET session_replication_role; the migrations grant it only the statements the service runs
(ledger_entries: SELECT and INSERT). On the embedded server `prepare_server` makes both roles, the
database (owned by quits_owner) and, for a data directory made before the roles existed, hands every
object of the schema to quits_owner. For an external server an operator does the same once, as a
superuser: `python -m app.infra.roles postgresql://admin@host/quits` (or the SQL in the README).
"""

from __future__ import annotations

import asyncio
import logging
import sys

import asyncpg
from sqlalchemy.engine import URL

from app.infra.urls import normalise_url

logger = logging.getLogger("quits.roles")

OWNER_ROLE = "quits_owner"
APP_ROLE = "quits_app"
OPERATOR_HEADROOM = 10  # connections kept free of quits_app for the owner and operators
_BOOTSTRAP_LOCK_ID = 0x71756972  # pg_advisory_lock key in the maintenance database: one bootstrap at a time
_DUPLICATES = (asyncpg.DuplicateObjectError, asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError)

# Every object of the schema that quits_owner does not own yet (owned sequences and indexes follow their
# tables; objects of extensions stay with the extension).
ADOPT = """
DO $adopt$
DECLARE
    v_statement text;
BEGIN
    FOR v_statement IN
        SELECT format('ALTER %s %s OWNER TO quits_owner', CASE c.relkind WHEN 'v' THEN 'VIEW'
                   WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' WHEN 'c' THEN 'TYPE'
                   WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, c.oid::regclass)
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'c', 'f')
          AND c.relowner <> 'quits_owner'::regrole
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))
        UNION ALL
        SELECT format('ALTER ROUTINE %s OWNER TO quits_owner', p.oid::regprocedure)
        FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> 'quits_owner'::regrole
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
        UNION ALL
        SELECT format('ALTER %s %s OWNER TO quits_owner', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
                      t.oid::regtype)
        FROM pg_type t
        WHERE t.typnamespace = 'public'::regnamespace AND t.typowner <> 'quits_owner'::regrole
          AND t.typrelid = 0 AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                          AND d.objid = t.oid AND d.deptype = 'e')
    LOOP
        EXECUTE v_statement;
    END LOOP;
END
$adopt$;
"""


def role_url(url: URL, role: str) -> URL:
    """The same server and database, logged in as role (no password: set one in the URL you configure)."""
    return url.set(username=role, password=None)


def _plain(url: URL, database: str | None = None) -> str:
    plain = url.set(drivername="postgresql")
    if database is not None:
        plain = plain.set(database=database)
    return plain.render_as_string(hide_password=False)


async def _create_role(conn: asyncpg.Connection, role: str) -> None:
    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
        return
    try:
        await conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION")
    except _DUPLICATES:
        pass  # made meanwhile by another bootstrap (another cluster-wide caller)


async def _default_connection_limit(conn: asyncpg.Connection) -> int:
    total = int(await conn.fetchval("SHOW max_connections"))
    reserved = int(await conn.fetchval("SHOW superuser_reserved_connections"))
    return max(1, total - reserved - OPERATOR_HEADROOM)


async def _ensure_database(conn: asyncpg.Connection, database: str) -> None:
    owner = await conn.fetchval("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", database)
    if owner is None:
        try:
            await conn.execute(f'CREATE DATABASE "{database}" OWNER {OWNER_ROLE}')
        except _DUPLICATES:
            await conn.execute(f'ALTER DATABASE "{database}" OWNER TO {OWNER_ROLE}')
    elif owner != OWNER_ROLE:
        await conn.execute(f'ALTER DATABASE "{database}" OWNER TO {OWNER_ROLE}')


async def _adopt_schema(admin: URL, database: str) -> None:
    conn = await asyncpg.connect(_plain(admin, database))
    try:
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        await conn.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {OWNER_ROLE}")
        await conn.execute(ADOPT)
    finally:
        await conn.close()


async def prepare_server(
    admin: URL, *, database: str, limit_connections: bool = False, app_connection_limit: int | None = None
) -> None:
    """As a superuser (admin): both roles, `database` owned by quits_owner, its schema objects handed to
    quits_owner. With limit_connections, quits_app gets a CONNECTION LIMIT: app_connection_limit, or
    max_connections less the superuser reserved slots and OPERATOR_HEADROOM. Idempotent; concurrent
    callers take turns."""
    conn = await asyncpg.connect(_plain(admin, "postgres"))
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _BOOTSTRAP_LOCK_ID)
        for role in (OWNER_ROLE, APP_ROLE):
            await _create_role(conn, role)
        if limit_connections:
            limit = app_connection_limit or await _default_connection_limit(conn)
            await conn.execute(f"ALTER ROLE {APP_ROLE} CONNECTION LIMIT {int(limit)}")
        await _ensure_database(conn, database)
        await _adopt_schema(admin, database)
    finally:
        await conn.close()  # releases the advisory lock


def main(argv: list[str]) -> int:
    """`python -m app.infra.roles <superuser URL of the database>`: prepare an external server once."""
    if len(argv) != 1:
        print("usage: python -m app.infra.roles postgresql://<superuser>@<host>:<port>/<database>", file=sys.stderr)
        return 2
    admin = normalise_url(argv[0])
    asyncio.run(prepare_server(admin, database=str(admin.database)))
    print(f"roles {OWNER_ROLE} and {APP_ROLE} ready; {admin.database} is owned by {OWNER_ROLE}.")
    print("Set passwords (ALTER ROLE ... PASSWORD) if the server requires them, then run `alembic upgrade head`")
    print(f"with MIGRATION_DATABASE_URL as {OWNER_ROLE} and the service with DATABASE_URL as {APP_ROLE}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
