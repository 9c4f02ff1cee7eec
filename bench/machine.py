"""The machine and the code measured: description, git state, CPU accounting, the quiet check, tools."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import BENCH, ROOT, log
from bench.options import Options

if TYPE_CHECKING:
    import psutil

QUIET_PCT = 15  # --wait-quiet waits until the machine is below this
NOISY_PCT = 10  # above this, the run warns that figures will be low and noisy


def git_info(tree: Path = ROOT) -> str:
    """The commit measured, and whether the working tree had changes (read-only git commands)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "app", "migrations"], cwd=tree, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" + uncommitted changes in app/ or migrations/" if dirty.stdout.strip() else "")


def machine_info() -> dict[str, Any]:
    import psutil

    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def cpu_by_pid(procs: list[psutil.Process]) -> dict[int, float]:
    """User + system CPU seconds of each live process."""
    import psutil

    out: dict[int, float] = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[p.pid] = float(t.user + t.system)
    return out


def busy_seconds(t: Any) -> float:
    """Busy CPU seconds of the machine in a psutil.cpu_times() (guest time is already part of user time)."""
    fields = ("user", "nice", "system", "irq", "softirq", "steal")
    return float(sum(getattr(t, f, 0.0) for f in fields))


def background_busy(opts: Options) -> float:
    """% of all cores in use before the run; with --wait-quiet, waits for a quiet machine first."""
    import psutil

    busy = float(psutil.cpu_percent(interval=1.0))
    deadline = time.monotonic() + opts.wait_quiet
    while busy > QUIET_PCT and time.monotonic() < deadline:
        log(f"waiting for a quiet machine: {busy}% busy")
        busy = float(psutil.cpu_percent(interval=5.0))
    if busy > NOISY_PCT:
        log(f"warning: the machine is already {busy}% busy: figures will be low and noisy")
    return busy


def ensure_tools(opts: Options) -> None:
    """pip install bench/requirements.txt into this venv (unless --no-install); wrk must be on PATH."""
    if not opts.no_install:
        log("pip install -r bench/requirements.txt")
        pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(BENCH / "requirements.txt")], check=True)
    if not shutil.which("wrk"):
        sys.exit("wrk is required: apt-get install wrk (Debian/Ubuntu) or brew install wrk (macOS)")
