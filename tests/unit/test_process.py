"""glibc's malloc thresholds (app/infra/process.py): a worker that allocates and frees a few MiB per batch,
as a streaming export does, keeps those pages instead of faulting them in again for every batch."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from app.infra.process import tune_malloc

BATCHES = """
import resource, sys
from app.infra.process import tune_malloc
if sys.argv[1] == "tuned":
    assert tune_malloc(trim_threshold_mib=32, mmap_threshold_mib=8)
def batch():  # a batch of an export: 2,000 encoded records of 1 KiB, joined into one 2 MiB chunk
    records = [bytes(1024) for _ in range(2000)]
    return len(b",".join(records))
batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    batch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")


def _faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", BATCHES, mode], env=env, capture_output=True, text=True, check=True)
    return int(done.stdout)


@glibc
def test_tuned_malloc_keeps_a_batchs_pages() -> None:
    untuned, tuned = _faults("default"), _faults("tuned")
    assert tuned < 500, tuned  # 50 batches of 4 MiB each: the pages of the first are reused
    assert untuned > 10 * tuned, (untuned, tuned)  # glibc's own thresholds give them back every batch


@glibc
def test_an_environment_that_sets_malloc_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert tune_malloc(trim_threshold_mib=32, mmap_threshold_mib=8) is False
