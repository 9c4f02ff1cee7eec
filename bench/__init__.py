"""quits benchmark harness: throughput, latency, scale and memory of the service as production runs it.

Entry points: `bench/run.py` (what `make bench` runs) and `python -m bench`. By concern:

- options: the command line (argparse) as a typed `Options`
- appref: every import of the service's own code (and how another tree's app is run)
- machine: machine description, git state, CPU accounting helpers, the quiet check
- database: embedded or external PostgreSQL, re-creation, migrations, teardown
- server: uvicorn start/stop, memory monitor, CPU meter, pg_stat_activity sampler
- seed: users, groups and debts created over HTTP
- load: wrk runs and the scenario loop
- model / scenarios: shared types and THE table of load scenarios and measurements
- pgbench, scale, profiling: the measurements after the load scenarios
- report: markdown and JSON results
- ab: the interleaved A/B comparison against another commit (`--ab COMMIT`)
- main: one benchmark run from start to finish
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the tree measured (and the one this harness belongs to)
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
LUA = BENCH / "scenario.lua"

T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)
