"""guests: group members without an account, and invites to claim their place

- users.guest (a person added by name only: no email, no token, no password) and users.email may
  be null (for guests only: a CHECK keeps every full user's email).
- invites: single-use codes (stored as SHA-256, shown once) that let a guest's person become a full
  user with the same id and history; each expires (7 days) and is used at most once.
- The service's role (migration f9708ea38f85), when there is one, may read, create and use invites.

Downgrade refuses while guests exist (the schema before this migration cannot hold them).

Revision ID: b8d0f2a4c009
Revises: a7c9e1f3b008
Create Date: 2026-12-03 11:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b8d0f2a4c009"
down_revision: str | None = "a7c9e1f3b008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INVITES = """
CREATE TABLE invites (
    code_hash bytea NOT NULL,
    group_id uuid NOT NULL,
    user_id uuid NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    CONSTRAINT pk_invites PRIMARY KEY (code_hash),
    CONSTRAINT fk_invites_user_id_users FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT fk_invites_group_id_groups FOREIGN KEY (group_id) REFERENCES groups (id)
)
"""
APP_ROLE = """
DO $grants$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'quits_app') THEN
        REVOKE ALL ON invites FROM quits_app;
        GRANT SELECT, INSERT ON invites TO quits_app;
        GRANT UPDATE (used_at) ON invites TO quits_app;
    END IF;
END
$grants$
"""
REFUSE_DOWNGRADE = """
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM users WHERE guest) THEN
        RAISE EXCEPTION 'cannot downgrade: guest members exist (the schema before b8d0f2a4c009 cannot hold them)';
    END IF;
END $$
"""


def upgrade() -> None:
    op.execute("ALTER TABLE users ADD COLUMN guest boolean NOT NULL DEFAULT false, ALTER COLUMN email DROP NOT NULL")
    op.execute("ALTER TABLE users ADD CONSTRAINT ck_users_email_unless_guest CHECK (guest OR email IS NOT NULL)")
    op.execute(INVITES)
    op.execute(APP_ROLE)


def downgrade() -> None:
    op.execute(REFUSE_DOWNGRADE)
    op.execute("DROP TABLE invites")
    op.execute("ALTER TABLE users DROP CONSTRAINT ck_users_email_unless_guest")
    op.execute("ALTER TABLE users DROP COLUMN guest, ALTER COLUMN email SET NOT NULL")
