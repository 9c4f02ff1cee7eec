"""Shared types: the data seeded over HTTP, the shape of a load scenario and of a measurement, the ratios
they declare, and the targets. The table itself is in bench/scenarios.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

from bench.database import Database
from bench.options import Options
from bench.server import Server

TARGET_PGBENCH_RATIO = 0.40  # create-expense spread req/s >= 40% of pgbench TPS (issues #10, #11, #12)
TARGET_FX_PAYERS_RATIO = 0.40  # the 2-payer and foreign-currency variants too (issue #11)
TARGET_P99_MS = 50.0
TARGET_HOT_RATIO = 0.80  # create-expense hot >= 80% of spread
TARGET_SCALE_RATIO = 1.2  # p50 at 10^6 expenses <= 1.2 x p50 at 10^3

Placement = Literal["spread", "hot"]
PLACEMENTS: tuple[Placement, ...] = ("spread", "hot")

Result = dict[str, Any]  # one wrk run's figures (load.run_wrk), as written to the JSON report
Report = dict[str, Any]  # the whole JSON report
RatioRow = tuple[float, float | None, str]  # value, target (None: none), ">=" | "<=" | ""


class Member(TypedDict):
    id: str
    token: str


class Group(TypedDict):
    id: str
    members: list[Member]


# A (debtor, creditor) pair of a group, with the debtor's token and what the pair can take in 0.01 steps.
Pair = TypedDict("Pair", {"group": str, "from": str, "to": str, "token": str, "capacity_minor": int})


@dataclass(frozen=True)
class Fixture:
    """The groups seeded before the load: `spread` many, and one `hot` group all clients share."""

    spread: list[Group]
    hot: Group

    def groups(self, placement: Placement) -> list[Group]:
        return self.spread if placement == "spread" else [self.hot]


# Seeds what a scenario needs beyond the fixture (server base URL, fixture) -> pairs per placement.
Prepare = Callable[[str, Fixture], Mapping[Placement, list[Pair]]]


@dataclass(frozen=True)
class Ratio:
    """A ratio a load scenario reports: its req/s or p99 against pgbench's, or its hot against its spread req/s."""

    kind: Literal["rps/pgbench", "p99/pgbench", "hot/spread"]
    placement: Placement = "spread"  # for the pgbench ratios
    target: float | None = None

    def label(self, scenario: str) -> str:
        if self.kind == "rps/pgbench":
            return f"{scenario} {self.placement} / pgbench TPS"
        if self.kind == "p99/pgbench":
            return f"{scenario} {self.placement} p99 / pgbench p99"
        return f"{scenario} hot / spread"

    def value(self, results: Mapping[str, Result], pgbench: Mapping[str, Any] | None) -> float | None:
        """From the scenario's results by placement and pgbench's; None when a side of it was not measured."""
        mine = results.get(self.placement)
        if self.kind == "hot/spread":
            hot, spread = results.get("hot"), results.get("spread")
            return float(hot["rps"]) / float(spread["rps"]) if hot and spread and spread["rps"] else None
        if not mine or not pgbench:
            return None
        if self.kind == "rps/pgbench":
            return float(mine["rps"]) / float(pgbench["tps"])
        p99 = pgbench.get("latency_p99_ms")
        return float(mine["p99_ms"]) / float(p99) if p99 else None

    def row(self, value: float) -> RatioRow:
        if self.target is None:
            return (round(value, 3), None, "")
        return (round(value, 3), self.target, "<=" if self.kind == "p99/pgbench" else ">=")


@dataclass(frozen=True, kw_only=True)
class LoadScenario:
    """One wrk scenario: `builder` names the request builder in bench/scenario.lua (its `builders` table),
    `params` reach it as cfg.params (e.g. {"currency": "EUR"} for the expense builder)."""

    name: str
    builder: str
    placements: tuple[Placement, ...] = PLACEMENTS
    params: Mapping[str, str] = field(default_factory=dict)
    prepare: Prepare | None = None
    ratios: tuple[Ratio, ...] = ()

    def selected(self, only: list[str], placement: Placement) -> bool:
        """--only NAME or NAME:PLACEMENT (repeatable); no --only: everything."""
        return not only or bool({self.name, f"{self.name}:{placement}"} & set(only))

    def any_selected(self, only: list[str]) -> bool:
        return any(self.selected(only, p) for p in self.placements)


@dataclass(frozen=True, kw_only=True)
class Context:
    """What a measurement gets: the options, the running server and database, the seeded groups."""

    opts: Options
    server: Server
    db: Database
    tmp: Path  # scratch directory of the run
    fixture: Fixture
    stamp: str  # UTC stamp of the run, in result file names


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """A step after the load scenarios: its result goes to report[key]; `ratios` add rows to the ratio
    table; `render` gives its lines in the markdown report (it gets the whole report)."""

    key: str
    run: Callable[[Context], dict[str, Any]]
    enabled: Callable[[Options], bool]
    ratios: Callable[[dict[str, Any]], dict[str, RatioRow]] | None = None
    render: Callable[[Report], list[str]] | None = None


def scenario_ratios(
    scenarios: tuple[LoadScenario, ...], runs: list[dict[str, Any]], pgbench: Mapping[str, Any] | None
) -> dict[str, RatioRow]:
    """The ratio rows the scenarios declare, from the runs made ({"name", "placement", "result"} each)."""
    rows: dict[str, RatioRow] = {}
    for s in scenarios:
        results = {r["placement"]: r["result"] for r in runs if r["name"] == s.name}
        for ratio in s.ratios:
            value = ratio.value(results, pgbench)
            if value is not None:
                rows[ratio.label(s.name)] = ratio.row(value)
    return rows
