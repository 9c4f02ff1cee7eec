"""One Settings object, read from the environment and `.env`. Every limit lives here."""

import datetime as dt
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MAX_CORS_ORIGINS = 50
_ORIGIN = re.compile(r"\*|https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Database. No DATABASE_URL: an embedded PostgreSQL is started under embedded_data_dir, with the
    # roles quits_owner (migrations) and quits_app (the service) made for it (app/infra/roles.py).
    # DATABASE_URL is the service's connection (the app role); MIGRATION_DATABASE_URL is Alembic's (the
    # owner of the schema). DATABASE_URL alone: one role for both, with a warning at start-up.
    database_url: str | None = None
    migration_database_url: str | None = None
    embedded_data_dir: Path = PROJECT_ROOT / ".data" / "postgres"
    embedded_database: str = "quits"
    # CONNECTION LIMIT of quits_app on the embedded server; None: max_connections minus the superuser
    # reserved slots minus 10 for the owner and operators.
    embedded_app_connection_limit: int | None = Field(default=None, ge=1, le=10_000)
    migrate_on_startup: bool | None = None  # None: only when the database is embedded
    # Connections per worker: db_pool_size + db_max_overflow + db_write_pool_size (15 by default). Keep
    # workers x that + operator headroom < max_connections - superuser_reserved_connections (README).
    db_pool_size: int = Field(default=5, ge=1, le=200)
    db_max_overflow: int = Field(default=2, ge=0, le=200)
    db_write_pool_size: int = Field(default=8, ge=1, le=200)  # asyncpg pool of the hot writes
    db_pool_timeout_s: float = Field(default=5.0, gt=0, le=60)
    db_connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    statement_timeout_ms: int = Field(default=5_000, ge=100, le=600_000)
    lock_timeout_ms: int = Field(default=2_000, ge=10, le=600_000)
    idle_in_transaction_timeout_ms: int = Field(default=10_000, ge=100, le=600_000)
    # The name the service's sessions carry in pg_stat_activity (PostgreSQL allows 63 characters).
    db_application_name: str = Field(default="quits", min_length=1, max_length=63, pattern=r"^[ -~]+$")
    # DATABASE_URL goes through a transaction-mode pooler (PgBouncer pool_mode=transaction; docs/scaling.md):
    # no prepared statement outlives its transaction, nothing but application_name is sent at connect, and
    # the settings above are set per transaction (SET LOCAL). LISTEN needs a session of its own: the token
    # revocation listener connects to database_direct_url (the same database, not through the pooler);
    # without it, no worker listens and tokens are cached at most token_cache_ttl_ms.
    db_transaction_pooler: bool = False
    database_direct_url: str | None = None

    # Retries of serialization failures, deadlocks and lock timeouts.
    retry_max_attempts: int = Field(default=5, ge=1, le=20)
    retry_base_delay_ms: int = Field(default=5, ge=0, le=1_000)
    retry_max_delay_ms: int = Field(default=200, ge=0, le=10_000)
    retry_after_s: int = Field(default=1, ge=1, le=60)

    # Writes per group that one worker lets reach the database at once (0: no limit). See app/gate.py.
    # Expenses lock one balance slot per user, so several run side by side; settlements lock every
    # slot of both users, so more than one at a time would only queue on row locks.
    group_write_gate: int = Field(default=4, ge=0, le=1_000)
    group_settle_gate: int = Field(default=1, ge=0, le=1_000)
    # The shorter way in for the two hot POSTs (app/hotpath.py); false sends everything through FastAPI.
    hot_path: bool = True

    # API tokens. A worker caches token -> user for token_cache_ttl_ms (at most 1 s, so a revoked token
    # is refused by every worker within a second); last_used_at is written at most once per
    # token_touch_interval_s per token.
    token_cache_ttl_ms: int = Field(default=500, ge=0, le=1_000)
    token_cache_size: int = Field(default=10_000, ge=1, le=1_000_000)
    # While a worker listens for revocations (PostgreSQL NOTIFY), it may keep a token this long: a
    # revocation evicts it at once. 0: never cache longer than token_cache_ttl_ms.
    token_cache_listen_ttl_s: int = Field(default=60, ge=0, le=3_600)
    token_touch_interval_s: int = Field(default=60, ge=1, le=86_400)
    max_tokens_per_user: int = Field(default=100, ge=1, le=1_000)

    # Passwords: Argon2id parameters (RFC 9106's second recommendation by default) and how many hashes
    # one worker computes at once (each takes password_hash_memory_kib of memory).
    password_hash_time_cost: int = Field(default=3, ge=1, le=10)
    password_hash_memory_kib: int = Field(default=65_536, ge=1_024, le=1_048_576)
    password_hash_parallelism: int = Field(default=4, ge=1, le=16)
    password_hash_concurrency: int = Field(default=2, ge=1, le=64)

    # Failed logins (and wrong current passwords) per account and per client address, counted in
    # PostgreSQL (shared by every worker) in fixed windows of login_failure_window_s.
    login_failure_window_s: int = Field(default=900, ge=1, le=86_400)
    login_max_failures_per_account: int = Field(default=10, ge=1, le=10_000)
    login_max_failures_per_address: int = Field(default=100, ge=1, le=100_000)

    # Limits on input.
    max_group_members: int = Field(default=1_000, ge=2, le=100_000)
    max_body_bytes: int = Field(default=256 * 1024, ge=1_024, le=16 * 1024 * 1024)

    # Export (GET .../export) and import (POST /v1/groups/import); README, "Export and import".
    # An export streams batches of export_batch_rows records from one read-only snapshot, and keeps its
    # connection at most export_idle_timeout_ms idle between two batches (a client that reads slower
    # than that gets a cut-short download); at most export_concurrency exports stream at once per worker.
    export_batch_rows: int = Field(default=2_000, ge=100, le=50_000)
    export_concurrency: int = Field(default=2, ge=1, le=64)
    export_idle_timeout_ms: int = Field(default=60_000, ge=1_000, le=3_600_000)
    # An import's body may be up to import_max_body_bytes (its route's own limit; 413 beyond) and hold at
    # most import_max_rows rows (422 beyond). At most import_concurrency imports run at once per worker;
    # one waits at most import_wait_s for its turn (then 503 with Retry-After). Its one statement may run
    # for import_statement_timeout_ms, with import_work_mem_mb for its sorts (in memory, not on disk).
    import_max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1_024, le=256 * 1024 * 1024)
    import_max_rows: int = Field(default=100_000, ge=1, le=1_000_000)
    import_concurrency: int = Field(default=1, ge=1, le=16)
    import_wait_s: float = Field(default=10.0, gt=0, le=300)
    import_statement_timeout_ms: int = Field(default=120_000, ge=1_000, le=3_600_000)
    import_work_mem_mb: int = Field(default=256, ge=4, le=4_096)

    # glibc's malloc in each worker (app/infra/process.py): memory freed by one batch of a stream is kept
    # for the next (below malloc_trim_threshold_mib of free memory at the heap's top) instead of going back
    # to the kernel to be faulted in again; blocks of malloc_mmap_threshold_mib and more are mapped alone.
    # 0 for both leaves glibc's own (adaptive) thresholds, as do MALLOC_*_ variables set for the process.
    malloc_trim_threshold_mib: int = Field(default=32, ge=0, le=1_024)
    malloc_mmap_threshold_mib: int = Field(default=8, ge=0, le=32)

    # Idempotency keys are kept at least this long, then purged in the background.
    idempotency_ttl_hours: int = Field(default=24, ge=24, le=24 * 365)
    idempotency_purge_interval_s: int = Field(default=600, ge=1, le=86_400)
    idempotency_purge_batch: int = Field(default=1_000, ge=1, le=100_000)

    # Operations (README, "Operations"). Logs: text lines (default) or one JSON object per line.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # GET /metrics and the per-request counters (false: neither, for an A/B of their cost).
    metrics: bool = True
    # Where the workers' metric files live (prometheus_client multi-process mode). Unset: a directory per
    # server start, shared by the workers of one `uvicorn --workers N` (app/infra/metrics.py).
    prometheus_multiproc_dir: Path | None = None
    # How often each worker writes its request counts and pool sizes to the shared metric files (a scrape
    # also writes the serving worker's at once; the other workers' are at most this old).
    metrics_interval_s: float = Field(default=1.0, ge=0.1, le=60)
    # GET /health and /health/ready wait this long for the database.
    health_timeout_s: float = Field(default=2.0, gt=0, le=30)
    # Browser origins allowed to call the API (comma-separated, e.g. https://app.example.com); empty: CORS off.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # Recurring expenses (app/domain/recurring_scheduler.py). Each worker runs a scheduler (unless
    # recurring_scheduler is false) that wakes every recurring_interval_ms, and at once when this worker
    # creates, edits or skips a rule; it claims up to recurring_batch due rules at a time (FOR UPDATE
    # SKIP LOCKED, leased for recurring_lease_s so that workers share the work; a dead worker's lease
    # just runs out) and makes one occurrence of each, at most recurring_max_per_pass per pass, in date
    # order. A new or edited rule may owe at most recurring_max_due occurrences at once (else 422).
    recurring_scheduler: bool = True
    recurring_interval_ms: int = Field(default=1_000, ge=10, le=60_000)
    recurring_batch: int = Field(default=50, ge=1, le=1_000)
    recurring_max_per_pass: int = Field(default=1_000, ge=1, le=100_000)
    recurring_lease_s: float = Field(default=30.0, ge=0.1, le=3_600)
    recurring_max_due: int = Field(default=1_000, ge=1, le=10_000)
    # Tests only: the date (UTC) the rules and their scheduler take as today; None: the real date.
    recurring_today: dt.date | None = Field(default=None, ge=dt.date(1900, 1, 1), le=dt.date(2999, 12, 31))

    # Test hooks (fault injection headers). Never enable in production.
    enable_test_hooks: bool = False


    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _case_insensitive(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        return value.lower() if value.lower() in ("text", "json") else value.upper()

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        """A comma-separated list (as in the environment) or a sequence; each an origin or `*`."""
        items = [o.strip() for o in value.split(",")] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            return value
        origins = tuple(o.rstrip("/") for o in items if o)
        if len(origins) > MAX_CORS_ORIGINS:
            raise ValueError(f"at most {MAX_CORS_ORIGINS} origins")
        bad = [o for o in origins if not _ORIGIN.fullmatch(o)]
        if bad:
            raise ValueError(f"not an origin (scheme://host[:port]) or *: {bad}")
        return origins


@lru_cache
def get_settings() -> Settings:
    return Settings()
