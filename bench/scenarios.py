"""THE table: what one benchmark run measures, in order.

A load scenario is one `LoadScenario`: its name (for --only and the report), the request builder in
bench/scenario.lua that writes each request (a key of its `builders` table) with optional `params`
(they reach the builder as cfg.params), the placements it runs with (spread over the groups, then all
clients on the hot group), what it seeds first (`prepare`) and the ratios it reports, with targets.

A variant the builder already takes as a parameter (e.g. `params={"currency": "EUR"}` for the expense
builder, once the service accepts such a body) is one entry; a new request shape (e.g. a 2-payer body)
is one entry plus its builder function in scenario.lua. Only scenarios the service can answer belong here.

A measurement after the load scenarios (profile, pgbench, scale; e.g. export rows/s or import time)
is one `Measurement`: its report key, the function that runs it (it gets a `Context`: options,
server, database, seeded groups), when it is enabled, its ratio rows and its markdown lines.
"""

from __future__ import annotations

from bench import pgbench, profiling, report, scale, transfer, webpage
from bench.model import (
    TARGET_FX_PAYERS_RATIO,
    TARGET_HOT_RATIO,
    TARGET_PGBENCH_RATIO,
    LoadScenario,
    Measurement,
    Ratio,
)
from bench.seed import debt_pairs

LOAD_SCENARIOS: tuple[LoadScenario, ...] = (
    # POST .../expenses: 3 participants, equal split, payer rotating, a unique Idempotency-Key each
    LoadScenario(
        name="create-expense",
        builder="expense",
        ratios=(
            Ratio("rps/pgbench", "spread", target=TARGET_PGBENCH_RATIO),
            Ratio("rps/pgbench", "hot"),
            Ratio("p99/pgbench", "spread"),
            Ratio("hot/spread", target=TARGET_HOT_RATIO),
        ),
    ),
    # The same with two payers (half each), and in a foreign currency (EUR at 1.0850 in the USD groups)
    LoadScenario(
        name="create-expense-2-payers",
        builder="expense_two_payers",
        placements=("spread",),
        ratios=(Ratio("rps/pgbench", "spread", target=TARGET_FX_PAYERS_RATIO),),
    ),
    LoadScenario(
        name="create-expense-fx",
        builder="expense",
        placements=("spread",),
        params={"currency": "EUR", "exchange_rate": "1.0850"},
        ratios=(Ratio("rps/pgbench", "spread", target=TARGET_FX_PAYERS_RATIO),),
    ),
    # POST .../settlements of 0.01 along each group's suggested payments (after one large expense each)
    LoadScenario(name="create-settlement", builder="settlement", prepare=debt_pairs),
    # GET .../balances, each member's token in turn
    LoadScenario(name="get-balances", builder="balances"),
)

MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement(key="profile", run=profiling.run_profile, enabled=lambda o: o.profile, render=report.render_profile),
    Measurement(key="pgbench", run=pgbench.measure, enabled=lambda o: not o.skip_pgbench, render=report.render_pgbench),
    Measurement(
        key="scale",
        run=scale.run_scale,
        enabled=lambda o: not o.skip_scale,
        ratios=scale.scale_ratios,
        render=report.render_scale,
    ),
    # The web app's group page at 10^6 expenses (10^5 with --quick): server time <= 100 ms (issue #15)
    Measurement(
        key="web_page",
        run=webpage.run_web_page,
        enabled=lambda o: not o.skip_scale,
        ratios=webpage.web_page_ratios,
        render=webpage.render_web_page,
    ),
    # GET .../export of the scale step's 10^6-expense group (JSON, CSV): rows/s and peak RSS per worker;
    # POST /v1/groups/import of 10^5 rows (Splitwise CSV, ihatemoney JSON): seconds (bench/transfer.py)
    Measurement(
        key="transfer",
        run=transfer.run_transfer,
        enabled=lambda o: not o.skip_transfer,
        ratios=transfer.transfer_ratios,
        render=transfer.render_transfer,
    ),
)


def scenario_names() -> list[str]:
    return [f"{s.name}:{p}" for s in LOAD_SCENARIOS for p in s.placements]
