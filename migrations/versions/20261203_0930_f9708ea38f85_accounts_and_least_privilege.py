"""accounts (passwords, named API tokens, login failures); the service's role gets only what it needs

Accounts:
- users.password_hash: an Argon2id PHC string, NULL for an account without a password.
- api_tokens: a user's named tokens, each stored as the SHA-256 of the token (never the token).
  users.token_hash moves here as the live token named "registration". Downgrade moves each user's
  most recently used live token (else the oldest) back to users.token_hash, so everyone can still
  authenticate; other tokens, revoked ones and passwords cannot be kept by the older schema.
- login_failures: failed logins per account and per client address (subject: a SHA-256), counted in
  fixed windows and shared by every worker; rows of past windows are purged by the service.

Least privilege. When the role quits_app exists (the embedded server makes it; an operator makes it
for an external server, see the README), it may use the schema, read and write only what the service
writes, and only SELECT and INSERT ledger_entries; it owns nothing, so it cannot ALTER, DROP, TRUNCATE
or disable triggers, and it is no superuser, so it cannot SET session_replication_role. Tables created
later by the migrating role (the owner) get SELECT, INSERT, UPDATE, DELETE for quits_app by default
privileges; a table that must be append-only revokes UPDATE and DELETE in its own migration. Without
the role (one role for the service and migrations) nothing is granted. The write functions stay
SECURITY INVOKER: they run with quits_app's privileges, so none can do more than the service itself.

Revision ID: f9708ea38f85
Revises: f6b8d0e2a007
Create Date: 2026-12-03 09:30:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f9708ea38f85"
down_revision: str | None = "f6b8d0e2a007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACCOUNTS = """
ALTER TABLE users ADD COLUMN password_hash varchar(255);

CREATE TABLE api_tokens (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    name varchar(100) NOT NULL,
    token_hash bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    CONSTRAINT pk_api_tokens PRIMARY KEY (id),
    CONSTRAINT fk_api_tokens_user_id_users FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT uq_api_tokens_token_hash UNIQUE (token_hash)
);
CREATE INDEX ix_api_tokens_user_id_created_at ON api_tokens (user_id, created_at) WHERE revoked_at IS NULL;

INSERT INTO api_tokens (id, user_id, name, token_hash, created_at)
SELECT gen_random_uuid(), id, 'registration', token_hash, created_at FROM users;

ALTER TABLE users DROP COLUMN token_hash;

CREATE TABLE login_failures (
    subject bytea NOT NULL,
    window_start timestamptz NOT NULL,
    failures integer NOT NULL,
    CONSTRAINT pk_login_failures PRIMARY KEY (subject)
);
CREATE INDEX ix_login_failures_window_start ON login_failures (window_start);
"""

ACCOUNTS_DOWN = """
DROP TABLE login_failures;

ALTER TABLE users ADD COLUMN token_hash bytea;
UPDATE users u SET token_hash = coalesce(
    (SELECT t.token_hash FROM api_tokens t WHERE t.user_id = u.id AND t.revoked_at IS NULL
     ORDER BY t.last_used_at DESC NULLS LAST, t.created_at, t.id LIMIT 1),
    sha256(convert_to('revoked:' || gen_random_uuid()::text, 'UTF8'))
);
ALTER TABLE users ALTER COLUMN token_hash SET NOT NULL;
ALTER TABLE users ADD CONSTRAINT uq_users_token_hash UNIQUE (token_hash);

DROP TABLE api_tokens;
ALTER TABLE users DROP COLUMN password_hash;
"""

# What the service does to each table (functions run as the caller, so their writes count here).
GRANTS = {
    "users": "SELECT, INSERT, UPDATE",  # UPDATE: password_hash
    "groups": "SELECT, INSERT, UPDATE",  # UPDATE: the FOR UPDATE lock that serialises adding members
    "memberships": "SELECT, INSERT, DELETE",  # DELETE: member removal (balances follow by cascade)
    "balances": "SELECT, INSERT, UPDATE",  # INSERT: the memberships_slots trigger; UPDATE: quits_post, locks
    "expenses": "SELECT, INSERT, UPDATE",  # UPDATE: edits and voids (and their FOR UPDATE locks)
    "settlements": "SELECT, INSERT",
    "ledger_entries": "SELECT, INSERT",  # never UPDATE, DELETE or TRUNCATE
    "idempotency_keys": "SELECT, INSERT, UPDATE, DELETE",  # UPDATE: an expired key reclaimed; DELETE: purge
    "api_tokens": "SELECT, INSERT, UPDATE",  # UPDATE: last_used_at, revoked_at
    "login_failures": "SELECT, INSERT, UPDATE, DELETE",  # DELETE: purge of past windows
    "member_balances": "SELECT",
    "alembic_version": "SELECT",  # readiness checks compare the revision with the head
}


def _only_with_app_role(statements: list[str]) -> str:
    body = "\n    ".join(f"{statement};" for statement in statements)
    return f"""
DO $grants$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'quits_app') THEN
        RAISE NOTICE 'role quits_app does not exist: nothing granted (one role for service and migrations)';
        RETURN;
    END IF;
    {body}
END
$grants$;
"""


GRANT = [
    "GRANT USAGE ON SCHEMA public TO quits_app",
    *(f"GRANT {privileges} ON {table} TO quits_app" for table, privileges in GRANTS.items()),
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO quits_app",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO quits_app",
]
REVOKE = [
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM quits_app",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM quits_app",
    "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM quits_app",
    "REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM quits_app",
    "REVOKE USAGE ON SCHEMA public FROM quits_app",
]


def _statements(sql: str) -> list[str]:
    """One statement at a time (asyncpg prepares each); none of these contains a semicolon of its own."""
    return [s.strip() for s in sql.split(";") if s.strip()]


def upgrade() -> None:
    for statement in _statements(ACCOUNTS):
        op.execute(statement)
    op.execute(_only_with_app_role(GRANT))


def downgrade() -> None:
    op.execute(_only_with_app_role(REVOKE))
    for statement in _statements(ACCOUNTS_DOWN):
        op.execute(statement)
