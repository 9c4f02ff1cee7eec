"""The command line: argparse, defaults that depend on other options, and the typed `Options`."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

from bench import RESULTS, ROOT

DESCRIPTION = """quits benchmark: throughput, latency, scale and memory of the service as production runs it.

    .venv/bin/python bench/run.py            # full run, ~5 minutes on 2 cores
    .venv/bin/python bench/run.py --quick    # ~1 minute smoke run
    .venv/bin/python bench/run.py --database-url postgresql://postgres@127.0.0.1:5432/bench
    .venv/bin/python bench/run.py --ab main  # interleaved A/B: this tree against commit `main`

See bench/README.md for what each figure means. Results: bench/results/<stamp>.{json,md} and latest.*
(A/B: bench/results/ab-<stamp>.{json,md} and ab-latest.*).
"""

DEFAULT_AB_SCENARIOS = ["create-expense:spread", "create-expense:hot"]
MAX_CONNECTIONS = 97  # PostgreSQL's default max_connections (100) less the 3 reserved


@dataclass(kw_only=True)
class Options:
    """Every option, after defaults; the field order is the order of the report's "config"."""

    quick: bool
    workers: int
    clients: int
    wrk_threads: int
    pool_size: int
    max_overflow: int
    write_pool_size: int
    database_url: str | None
    data_dir: Path
    duration: float
    warmup: float
    groups: int
    members: int
    pgbench_scale: int
    pgbench_seconds: int
    scale_base: int
    scale_target: int
    scale_samples: int
    profile: bool
    profile_native: bool
    profile_seconds: float
    wait_quiet: float
    server_env: list[str]
    allow_unbalanced: bool
    app: str
    only: list[str]
    skip_pgbench: bool
    skip_scale: bool
    skip_transfer: bool
    no_install: bool
    out: Path
    ab: str | None
    ab_rounds: int

    def server_env_dict(self) -> dict[str, str]:
        return dict(kv.split("=", 1) for kv in self.server_env)


def _add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=2, help="uvicorn --workers (default 2)")
    p.add_argument("--clients", type=int, default=32, help="concurrent HTTP connections (default 32)")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument(
        "--pool-size", type=int, default=None, help="DB_POOL_SIZE per worker (default 1.5 x clients/workers)"
    )
    p.add_argument("--max-overflow", type=int, default=None, help="DB_MAX_OVERFLOW per worker (default 0)")
    p.add_argument(
        "--write-pool-size",
        type=int,
        default=None,
        help="DB_WRITE_POOL_SIZE per worker, the asyncpg pool of the hot writes (default clients/workers)",
    )
    p.add_argument(
        "--database-url",
        default=None,
        help="existing PostgreSQL server; the database named in the URL "
        "is DROPPED and re-created (its name must contain 'bench'). Default: embedded server",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=ROOT / ".data" / "bench-postgres",
        help="embedded PostgreSQL data directory (default .data/bench-postgres)",
    )


def _add_measurement_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=None, help="seconds per load scenario (default 12, quick 3)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds before the scenarios (default 3)")
    p.add_argument("--groups", type=int, default=64, help="spread groups (default 64)")
    p.add_argument("--members", type=int, default=4, help="members per group, hot group included (default 4)")
    p.add_argument("--pgbench-scale", type=int, default=None, help="pgbench -i -s (default 10)")
    p.add_argument("--pgbench-seconds", type=int, default=None, help="pgbench -T (default 15, quick 4)")
    p.add_argument("--scale-base", type=int, default=1_000, help="expenses for the small measurement (10^3)")
    p.add_argument("--scale-target", type=int, default=None, help="expenses for the large one (10^6, quick 10^5)")
    p.add_argument("--scale-samples", type=int, default=None, help="sequential requests per latency figure (200)")
    p.add_argument(
        "--no-profile",
        dest="profile",
        action="store_false",
        help="skip the extra create-expense run under py-spy (the hot-spot summary)",
    )
    p.add_argument(
        "--no-profile-native",
        dest="profile_native",
        action="store_false",
        help="py-spy without --native (no C/Cython/libc frames; use where native unwinding fails)",
    )
    p.add_argument("--profile-seconds", type=float, default=None, help="length of the profiled run (default 12)")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="on a shared machine: wait up to SECONDS for other processes to use < 15%% of the CPUs before starting",
    )
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the server (repeatable), e.g. DB_POOL_TIMEOUT_S=10",
    )
    p.add_argument(
        "--allow-unbalanced",
        action="store_true",
        help="keep a scenario whose connections landed unevenly on the workers (default: restart wrk)",
    )
    p.add_argument(
        "--app", default="app.main:app", help="ASGI app for uvicorn (default app.main:app; for A/B experiments)"
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SCENARIO[:PLACEMENT]",
        help="run only these load scenarios (repeatable), e.g. create-expense:spread (for experiments)",
    )
    p.add_argument(
        "--ab",
        default=None,
        metavar="COMMIT",
        help="interleaved A/B: run the load scenarios (default: " + ", ".join(DEFAULT_AB_SCENARIOS) + "; "
        "--only to choose) alternately against this tree and COMMIT (checked out with git worktree add "
        "--detach into a temporary directory), each side on a fresh database migrated by its own tree, "
        "one pgbench per round; no profile or scale step",
    )
    p.add_argument("--ab-rounds", type=int, default=3, metavar="N", help="A/B rounds (default 3)")
    p.add_argument("--skip-pgbench", action="store_true")
    p.add_argument("--skip-scale", action="store_true")
    p.add_argument("--skip-transfer", action="store_true", help="no export/import measurement")
    p.add_argument("--no-install", action="store_true", help="do not pip install bench/requirements.txt")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory (default bench/results)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="~1 minute smoke run (short scenarios, 10^5 scale)")
    _add_server_options(p)
    _add_measurement_options(p)
    _add_run_options(p)
    return p


def _apply_defaults(a: argparse.Namespace) -> None:
    q = a.quick
    a.duration = a.duration or (3.0 if q else 12.0)
    a.warmup = a.warmup if a.warmup is not None else (1.0 if q else 3.0)
    a.pgbench_scale = a.pgbench_scale or 10  # fewer branches than clients would make pgbench a hot-row test
    a.pgbench_seconds = a.pgbench_seconds or (4 if q else 15)
    a.scale_target = a.scale_target or (100_000 if q else 1_000_000)
    a.scale_samples = a.scale_samples or (100 if q else 200)
    a.profile_seconds = a.profile_seconds or (4.0 if q else 12.0)
    # One pooled connection per client a worker may hold (up to 21 of 32 after the balance check in
    # load.run_wrk), so no overflow connection is opened and closed per burst (each costs PostgreSQL a fork).
    a.pool_size = a.pool_size or max(1, math.ceil(1.5 * a.clients / a.workers))
    a.max_overflow = a.max_overflow if a.max_overflow is not None else 0
    # The hot writes use their own asyncpg pool; everything else the engine's. Both stay open while
    # pgbench runs its 32 clients on the same server (max_connections 100, 3 reserved).
    a.write_pool_size = a.write_pool_size or max(1, math.ceil(a.clients / a.workers))
    if a.workers * (a.pool_size + a.max_overflow + a.write_pool_size) + a.clients > MAX_CONNECTIONS:
        a.pool_size = max(1, (MAX_CONNECTIONS - a.clients) // a.workers - a.write_pool_size - a.max_overflow)
    if a.ab and not a.only:
        a.only = list(DEFAULT_AB_SCENARIOS)


def _check(p: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    if a.clients < a.wrk_threads:
        p.error("--clients must be >= --wrk-threads")
    if a.members < 4:
        p.error("--members must be >= 4 (expenses have 3 participants besides the payer)")
    if any("=" not in kv for kv in a.server_env):
        p.error("--server-env takes NAME=VALUE")
    if a.ab_rounds < 1:
        p.error("--ab-rounds must be >= 1")


def parse_args(argv: list[str] | None = None) -> Options:
    p = parser()
    a = p.parse_args(argv)
    _apply_defaults(a)
    _check(p, a)
    return Options(**vars(a))
