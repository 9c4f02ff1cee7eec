"""Scale: reads of a group with 10^3 expenses against one with 10^6 (10^5 with --quick).

Group "small" gets its expenses over HTTP, group "large" by direct SQL in one transaction (creating 10^6
over HTTP would take an hour); both are then measured interleaved: same server state, same noise."""

from __future__ import annotations

import asyncio
import http.client
import math
import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx

from bench import log
from bench.model import TARGET_SCALE_RATIO, Context, Group, RatioRow
from bench.seed import seed_groups
from bench.server import Server

if TYPE_CHECKING:
    import asyncpg

WARMUP_ROUNDS = 10
ENDPOINTS = {"balances": "/v1/groups/{}/balances", "expenses (first page)": "/v1/groups/{}/expenses"}
Targets = dict[str, tuple[str, str]]  # name -> (path, token)


def interleaved_latency(server: Server, targets: Targets, samples: int) -> dict[str, dict[str, float]]:
    """p50/p99 of sequential GETs on one keep-alive connection; the targets take turns (rotating order),
    so background noise hits every target alike."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    names = list(targets)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(samples + WARMUP_ROUNDS):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            path, token = targets[name]
            t0 = time.perf_counter_ns()
            c.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            r = c.getresponse()
            r.read()
            elapsed = (time.perf_counter_ns() - t0) / 1e6
            if r.status != 200:
                raise RuntimeError(f"GET {path} -> {r.status}")
            if i >= WARMUP_ROUNDS:
                times[name].append(elapsed)
    c.close()
    out = {}
    for name, ts in times.items():
        ts.sort()
        out[name] = {"p50_ms": round(ts[len(ts) // 2], 3), "p99_ms": round(ts[math.ceil(0.99 * len(ts)) - 1], 3)}
    return out


async def _post_expenses(base: str, group: Group, count: int) -> None:
    ms = group["members"]
    sem = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:

        async def one(i: int) -> None:
            payer = ms[i % len(ms)]
            body = {
                "description": f"scale {i}",
                "amount": f"{30 + i % 10}.{i % 100:02d}",
                "paid_by": payer["id"],
                "split_type": "equal",
                "participants": [{"user_id": m["id"]} for m in ms if m is not payer][:3],
            }
            async with sem:
                r = await c.post(
                    f"/v1/groups/{group['id']}/expenses",
                    json=body,
                    headers={"Authorization": f"Bearer {payer['token']}"},
                )
            r.raise_for_status()

        await asyncio.gather(*(one(i) for i in range(count)))


_BULK = """
CREATE TEMP TABLE bulk ON COMMIT DROP AS
SELECT i, gen_random_uuid() AS id, gen_random_uuid() AS posting_id, (3000 + 3 * (i % 10))::bigint AS amount,
       (i % 4)::int AS payer_idx,
       now() - interval '1 hour' - interval '1 second' * ($1::bigint - i) AS created_at
FROM generate_series(1, $1::bigint) AS i;

CREATE TEMP TABLE payer_map (payer_idx int, payer uuid, o1 uuid, o2 uuid, o3 uuid) ON COMMIT DROP;
"""

_BULK_EXPENSES = """
INSERT INTO expenses (id, group_id, description, amount_minor, currency, group_currency, group_amount_minor, paid_by,
                      payers, split_type, shares, date, version, created_by, created_at, updated_by, updated_at)
SELECT b.id, $1, 'bench bulk', b.amount, 'USD', 'USD', b.amount, pm.payer,
       jsonb_build_array(jsonb_build_array(pm.payer::text, b.amount)), 'equal',
       jsonb_build_array(jsonb_build_array(pm.o1::text, b.amount / 3), jsonb_build_array(pm.o2::text, b.amount / 3),
                         jsonb_build_array(pm.o3::text, b.amount / 3)),
       (b.created_at AT TIME ZONE 'UTC')::date, 1, pm.payer, b.created_at, pm.payer, b.created_at
FROM bulk b JOIN payer_map pm USING (payer_idx)
"""

_CHAIN_STEP = """
CREATE FUNCTION pg_temp.chain_step(state bytea, head bytea, id uuid, posting uuid, grp uuid, usr uuid, amount bigint,
                                   kind text, expense uuid, version integer, settlement uuid, at timestamptz)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE
AS 'BEGIN RETURN quits_entry_hash(coalesce(state, head), id, posting, grp, usr, amount, kind, expense, version,
                                  settlement, at); END';
CREATE AGGREGATE pg_temp.chain(bytea, uuid, uuid, uuid, uuid, bigint, text, uuid, integer, uuid, timestamptz)
    (SFUNC = pg_temp.chain_step, STYPE = bytea);
"""
"""The running hash of chain 0 as a window aggregate: each entry's hash follows from the one before it, as
quits_post appends them (the chain's head row is the start), so `python -m app.verify` walks the loaded
group's chain like any other."""

_BULK_LEDGER = """
WITH head AS (SELECT c.head FROM ledger_chains c WHERE c.group_id = $1 AND c.slot = 0 FOR UPDATE),
entries AS (
    SELECT gen_random_uuid() AS id, b.posting_id, e.user_id, e.amount, b.id AS expense_id, b.created_at, e.n
    FROM bulk b JOIN payer_map pm USING (payer_idx)
    CROSS JOIN LATERAL (VALUES (1, pm.payer, b.amount), (2, pm.o1, -b.amount / 3), (3, pm.o2, -b.amount / 3),
                               (4, pm.o3, -b.amount / 3)) AS e(n, user_id, amount)
)
INSERT INTO ledger_entries (id, posting_id, group_id, user_id, amount_minor, kind, expense_id, expense_version,
                            created_at, chain_slot, chain_hash)
SELECT e.id, e.posting_id, $1, e.user_id, e.amount, 'expense', e.expense_id, 1, e.created_at, 0,
       pg_temp.chain((SELECT head FROM head), e.id, e.posting_id, $1, e.user_id, e.amount, 'expense', e.expense_id,
                     1, NULL::uuid, e.created_at)
           OVER (ORDER BY e.created_at, e.expense_id, e.n ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
FROM entries e
ORDER BY e.created_at, e.expense_id, e.n
"""

_BULK_HEAD = """
UPDATE ledger_chains c SET head = l.chain_hash, entries = c.entries + $3
FROM (SELECT chain_hash FROM ledger_entries WHERE group_id = $1 AND chain_slot = 0 AND seq > $2
      ORDER BY seq DESC LIMIT 1) l
WHERE c.group_id = $1 AND c.slot = 0
"""

_BULK_NETS = """
UPDATE balances b SET net_minor = b.net_minor + d.delta
FROM (SELECT user_id, sum(amount_minor) AS delta FROM ledger_entries WHERE group_id = $1 AND seq > $2
      GROUP BY user_id) d
WHERE b.group_id = $1 AND b.user_id = d.user_id AND b.slot = 0
"""

_CHECK = """
SELECT (SELECT count(*) FROM expenses WHERE group_id = $1) AS expenses,
       (SELECT count(*) FROM ledger_entries WHERE group_id = $1) AS entries,
       (SELECT count(*) FROM member_balances m WHERE m.group_id = $1 AND m.net_minor <>
            (SELECT coalesce(sum(amount_minor), 0) FROM ledger_entries l
             WHERE l.group_id = m.group_id AND l.user_id = m.user_id)) AS drifted,
       (SELECT sum(net_minor) FROM balances WHERE group_id = $1) AS net_sum,
       (SELECT count(*) FROM ledger_chains c WHERE c.group_id = $1 AND c.entries <>
            (SELECT count(*) FROM ledger_entries l WHERE l.group_id = c.group_id AND l.chain_slot = c.slot)
            ) AS chains_off
"""


async def _bulk_insert(
    conn: asyncpg.Connection, *, gid: uuid.UUID, members: list[uuid.UUID], count: int
) -> dict[str, float]:
    """The expenses, their ledger entries and the balance moves, in one transaction; seconds per step."""
    timings: dict[str, float] = {}
    max_seq = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM ledger_entries")
    async with conn.transaction():
        t = time.monotonic()
        await conn.execute(_BULK.replace("$1::bigint", str(int(count))))
        for idx, payer in enumerate(members):
            others = [m for m in members if m != payer]
            await conn.execute("INSERT INTO payer_map VALUES ($1, $2, $3, $4, $5)", idx, payer, *others)
        await conn.execute(_BULK_EXPENSES, gid)
        timings["expenses_s"] = time.monotonic() - t
        t = time.monotonic()
        await conn.execute(_CHAIN_STEP)
        inserted = await conn.execute(_BULK_LEDGER, gid)
        await conn.execute(_BULK_HEAD, gid, max_seq, int(inserted.split()[-1]))
        timings["ledger_entries_s"] = time.monotonic() - t
        t = time.monotonic()
        await conn.execute(_BULK_NETS, gid, max_seq)
        timings["balances_s"] = time.monotonic() - t
    return timings


async def bulk_load(dsn: str, group: Group, count: int) -> dict[str, Any]:
    """Grow the group by `count` expenses (3 participants, equal split, payer rotating) by direct SQL.

    Every expense gets its 4 ledger entries (one posting summing to zero) and the members' balance
    (slot 0) moves by the sum of the new entries, so the ledger and the balances stay consistent. Foreign-key
    triggers are skipped (session_replication_role = replica) when allowed: the rows reference the
    group, its members and the expenses inserted in the same transaction, so they hold by construction."""
    import asyncpg

    gid = uuid.UUID(group["id"])
    members = sorted(uuid.UUID(m["id"]) for m in group["members"])[:4]
    conn = await asyncpg.connect(dsn)
    try:
        replica = True
        try:
            await conn.execute("SET session_replication_role = replica")
        except asyncpg.PostgresError:
            replica = False
        await conn.execute("SET work_mem = '256MB'; SET maintenance_work_mem = '512MB'")
        timings = await _bulk_insert(conn, gid=gid, members=members, count=count)
        await conn.execute("RESET session_replication_role")
        t = time.monotonic()
        await conn.execute("VACUUM (ANALYZE) expenses, ledger_entries, memberships, balances")
        timings["vacuum_analyze_s"] = time.monotonic() - t
        check = dict(await conn.fetchrow(_CHECK, gid))
    finally:
        await conn.close()
    return {"fk_triggers_skipped": replica, **{k: round(v, 1) for k, v in timings.items()}, "check": check}


_LARGE: dict[str, tuple[Group, int, dict[str, Any]]] = {}
"""The run's bulk-loaded group, its size and its load report, by server (bench/webpage, bench/transfer)."""


def large_group(ctx: Context) -> tuple[Group, int, dict[str, Any]]:
    """The group of opts.scale_target expenses: the one the scale step loaded, else one loaded now (once
    per run: loading 10^6 expenses takes minutes)."""
    if ctx.server.base not in _LARGE:
        (large,) = seed_groups(ctx.server.base, ["large"], ctx.opts.members)
        log(f"large group: {ctx.opts.scale_target} expenses by direct SQL")
        t0 = time.monotonic()
        load = asyncio.run(bulk_load(ctx.db.dsn(), large, ctx.opts.scale_target))
        load["total_s"] = round(time.monotonic() - t0, 1)
        log(f"large group: loaded, check {load['check']}")
        _LARGE[ctx.server.base] = (large, ctx.opts.scale_target, load)
    return _LARGE[ctx.server.base]


def _targets(*groups: tuple[str, Group]) -> Targets:
    return {
        f"{e}|{label}": (p.format(g["id"]), g["members"][0]["token"])
        for e, p in ENDPOINTS.items()
        for label, g in groups
    }


def run_scale(ctx: Context) -> dict[str, Any]:
    """Group "small" gets 10^3 expenses over HTTP, group "large" 10^6 by direct SQL; both are then measured
    interleaved (same server state, same background noise). "small" is also measured before the bulk load."""
    opts, server = ctx.opts, ctx.server
    small, large = seed_groups(server.base, ["scale-small", "scale-large"], opts.members)
    log(f"scale: {opts.scale_base} expenses over HTTP")
    asyncio.run(_post_expenses(server.base, small, opts.scale_base))
    before = interleaved_latency(server, _targets(("small", small)), opts.scale_samples)
    log(f"scale: {opts.scale_target} expenses by direct SQL")
    t0 = time.monotonic()
    load = asyncio.run(bulk_load(ctx.db.dsn(), large, opts.scale_target))
    load["total_s"] = round(time.monotonic() - t0, 1)
    _LARGE[server.base] = (large, opts.scale_target, load)
    log(f"scale: loaded in {load['total_s']} s, check {load['check']}")
    after = interleaved_latency(server, _targets(("small", small), ("large", large)), opts.scale_samples)
    result: dict[str, Any] = {"base": opts.scale_base, "target": opts.scale_target, "load": load, "endpoints": {}}
    for e in ENDPOINTS:
        s_, l_ = after[f"{e}|small"], after[f"{e}|large"]
        result["endpoints"][e] = {
            "small_before_load": before[f"{e}|small"],
            "small": s_,
            "large": l_,
            "ratio_p50": round(l_["p50_ms"] / s_["p50_ms"], 3),
        }
    return result


def scale_ratios(scale: dict[str, Any]) -> dict[str, RatioRow]:
    return {
        f"GET {k} p50 {scale['target']:,} / {scale['base']:,}": (round(e["ratio_p50"], 3), TARGET_SCALE_RATIO, "<=")
        for k, e in scale["endpoints"].items()
    }
