"""Profile: one more create-expense spread run with py-spy attached to every worker, summarised by layer
and by app function (the raw collapsed stacks are kept next to the results)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import ROOT, log
from bench.load import WrkJob, run_wrk
from bench.model import Context

PROFILE_BUILDER = "expense"
RATE_HZ = 250
APP = f"{ROOT}/app/"

_CATEGORIES = [
    ("syscall (libc)", "/libc.so"),
    ("CPython GC", "gc_collect"),
    ("CPython runtime", "libpython"),
    ("CPython runtime", "/include/python3"),
    ("CPython runtime", "/Python-3."),
    ("httptools", "llhttp"),
    ("httptools", "/httptools/"),
    ("opentelemetry (fastapi telemetry)", "/opentelemetry/"),
    ("app", APP),
    ("sqlalchemy", "/sqlalchemy/"),
    ("asyncpg", "/asyncpg/"),
    ("fastapi", "/fastapi/"),
    ("starlette", "/starlette/"),
    ("pydantic", "/pydantic"),
    ("uvicorn", "/uvicorn/"),
    ("uvloop/asyncio", "/uvloop/"),
    ("uvloop/asyncio", "/asyncio/"),
    ("orjson/json", "/json/"),
]


def _category(frame: str) -> str:
    for name, marker in _CATEGORIES:
        if marker in frame:
            return name
    if "/python3." in frame or "<frozen " in frame or "(<string>" in frame:
        return "stdlib"
    return "other"


def _short(frame: str) -> str:
    """'func (/path/to/site-packages/pkg/mod.py:12)' -> 'func (pkg/mod.py)'."""
    m = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    for marker in (f"{ROOT}/", "site-packages/", "/lib/python3.11/", "/lib/python3.12/", "/lib/python3.13/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


# inclusive time of these layers: a sample counts once if any of its frames matches
_INCLUSIVE = {
    "sqlalchemy (and asyncpg below it)": ("/sqlalchemy/",),
    "asyncpg": ("/asyncpg/",),
    "fastapi/starlette (and all below)": ("/fastapi/", "/starlette/"),
    "pydantic": ("/pydantic",),
    "uvicorn protocol (outside the app)": ("/uvicorn/protocols/",),
}


def _syscall_owner(frames: list[str]) -> str:
    """Which layer issued the system call at the leaf."""
    owner = next((_category(f) for f in reversed(frames) if "/libc.so" not in f), "other")
    owner = {"asyncpg": "asyncpg (to PostgreSQL)", "uvloop/asyncio": "uvloop"}.get(owner, owner)
    for f in reversed(frames):
        if "/asyncpg/" in f:
            return "asyncpg (to PostgreSQL)"
        if "/uvicorn/" in f or "/starlette/" in f:
            return "uvicorn/starlette (HTTP)"
    return owner


@dataclass
class _Tally:
    total: int = 0
    detached: int = 0
    by_layer: Counter[str] = field(default_factory=Counter)
    app_incl: Counter[str] = field(default_factory=Counter)
    self_frames: Counter[str] = field(default_factory=Counter)
    app_self: Counter[str] = field(default_factory=Counter)
    incl_markers: Counter[str] = field(default_factory=Counter)
    syscalls: Counter[str] = field(default_factory=Counter)

    def add(self, frames: list[str], n: int) -> None:
        self.total += n
        if not any("spawn_main" in f for f in frames):
            self.detached += n  # no frame at all, or a greenlet's stack (SQLAlchemy runs its sync side in one)
        if not frames:
            self.by_layer["(no frame)"] += n
            return
        leaf = frames[-1]
        self.by_layer[_category(leaf)] += n
        if "/libc.so" in leaf:
            call = leaf.split(" (")[0]
            call = "libc (unresolved)" if call.startswith("0x") else call
            self.syscalls[f"{call} from {_syscall_owner(frames)}"] += n
        self.self_frames[_short(leaf)] += n
        app_frames = [f for f in frames if APP in f]
        for f in {_short(f) for f in app_frames}:
            self.app_incl[f] += n
        if app_frames:
            self.app_self[_short(app_frames[-1])] += n
        for label, ms in _INCLUSIVE.items():
            if any(any(m in f for m in ms) for f in frames):
                self.incl_markers[label] += n

    def pct(self, c: Counter[str], k: int) -> list[tuple[str, float]]:
        return [(k_, round(100 * v / self.total, 1)) for k_, v in c.most_common(k)] if self.total else []


def summarise_profile(raw_files: list[Path], top: int = 15) -> dict[str, Any]:
    """Collapsed stacks ('f1;f2;...;leaf count') → self time by layer, inclusive time per app function."""
    t = _Tally()
    for path in raw_files:
        for line in path.read_text().splitlines():
            stack, _, count_s = line.rpartition(" ")
            if stack and count_s.isdigit():
                t.add([f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))], int(count_s))
    return {
        "samples": t.total,
        "detached_pct": round(100 * t.detached / t.total, 1) if t.total else 0.0,
        "self_by_layer_pct": t.pct(t.by_layer, 20),
        "syscalls_pct": t.pct(t.syscalls, 6),
        "inclusive_by_layer_pct": t.pct(t.incl_markers, 10),
        "app_inclusive_pct": t.pct(t.app_incl, top),
        "app_innermost_pct": t.pct(t.app_self, top),
        "top_self_frames_pct": t.pct(t.self_frames, top),
    }


def _py_spy() -> Path | None:
    spy = Path(sys.executable).parent / "py-spy"
    if spy.exists():
        return spy
    found = shutil.which("py-spy")
    return Path(found) if found else None


def _spy_command(spy: Path, *, pid: int, seconds: int, native: bool, out: Path) -> list[str]:
    return [
        str(spy),
        *("record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(RATE_HZ), "--gil"),
        *(["--native"] if native else []),
        *("--format", "raw", "--full-filenames", "--output", str(out)),
    ]


def run_profile(ctx: Context) -> dict[str, Any]:
    opts, server = ctx.opts, ctx.server
    spy = _py_spy()
    if spy is None:
        log("profile: py-spy not found (pip install -r bench/requirements.txt, or drop --no-install)")
        return {"error": "py-spy not found: pip install -r bench/requirements.txt"}
    raw_files = [opts.out / f"profile-{ctx.stamp}-worker{i}.txt" for i in range(len(server.workers))]
    spies: list[subprocess.Popen[bytes]] = []
    secs = max(1, round(opts.profile_seconds))

    def start_spies() -> None:
        for w, out in zip(server.workers, raw_files, strict=True):
            cmd = _spy_command(spy, pid=w.pid, seconds=secs, native=opts.profile_native, out=out)
            spies.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))

    log(f"profile: create-expense spread for {secs} s under py-spy --gil ({RATE_HZ} Hz, every worker)")
    job = WrkJob(builder=PROFILE_BUILDER, tag=f"profile-{ctx.stamp}", duration=secs, groups=ctx.fixture.spread)
    result = run_wrk(opts, server=server, db=ctx.db, tmp=ctx.tmp, job=job, during=start_spies)
    for s in spies:
        err = s.communicate(timeout=60)[1]
        if s.returncode != 0:
            log(f"py-spy failed: {err.decode()[-500:]}")
    files = [f for f in raw_files if f.exists() and f.stat().st_size]
    if not files:
        return {"error": "py-spy recorded nothing (it needs ptrace: root, CAP_SYS_PTRACE or ptrace_scope=0)"}
    summary = summarise_profile(files)
    summary["files"] = [os.path.relpath(f, ROOT) for f in files]
    summary["load_under_profiler"] = {k: result[k] for k in ("rps", "p50_ms", "p99_ms", "errors")}
    return summary
