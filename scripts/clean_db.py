"""Remove the embedded PostgreSQL's data directory (`make clean-db`): every database in it is lost.

    python scripts/clean_db.py           # refuses while the embedded server runs (exit 1)
    python scripts/clean_db.py --stop    # stops it first (fast shutdown: open sessions are cut off)

The directory is EMBEDDED_DATA_DIR (default .data/postgres). Only a PostgreSQL data directory (one with
PG_VERSION) or an empty one is removed; a server named by DATABASE_URL is never touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from app.infra.db import embedded_server_pid  # noqa: E402 (after the path set-up above)

STOP_TIMEOUT_S = 60.0


def stop(pid: int, data_dir: Path) -> bool:
    """Fast shutdown (SIGINT: PostgreSQL rolls back open transactions and exits); True once it is gone."""
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while embedded_server_pid(data_dir) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stop", action="store_true", help="stop a running embedded server first")
    args = parser.parse_args(argv)
    from app.infra.config import Settings

    data_dir = Settings().embedded_data_dir.expanduser().resolve()
    if not data_dir.exists():
        print(f"{data_dir} does not exist: nothing to remove")
        return 0
    if any(data_dir.iterdir()) and not (data_dir / "PG_VERSION").exists():
        print(f"{data_dir} is not a PostgreSQL data directory (no PG_VERSION): not removing it", file=sys.stderr)
        return 1
    pid = embedded_server_pid(data_dir)
    if pid is not None and not args.stop:
        print(
            f"the embedded PostgreSQL (pid {pid}) is running on {data_dir}: stop what uses it (the service, "
            "tests, alembic; it stops with the last of them), or run `make clean-db STOP=1` to stop it first",
            file=sys.stderr,
        )
        return 1
    if pid is not None and not stop(pid, data_dir):
        print(f"the embedded PostgreSQL (pid {pid}) did not stop within {STOP_TIMEOUT_S:.0f} s", file=sys.stderr)
        return 1
    shutil.rmtree(data_dir)
    print(f"removed {data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
