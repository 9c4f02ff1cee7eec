import asyncio
import uuid

import pytest

from app.infra.gate import GroupGate


@pytest.mark.parametrize("width", [1, 2, 3])
def test_gate_admits_at_most_width_per_group_and_forgets_idle_groups(width: int) -> None:
    gate = GroupGate(width)
    g1, g2 = uuid.uuid4(), uuid.uuid4()
    inside = {g1: 0, g2: 0}
    peak = {g1: 0, g2: 0}

    async def write(group: uuid.UUID) -> None:
        async with gate.enter(group, 5):
            inside[group] += 1
            peak[group] = max(peak[group], inside[group])
            await asyncio.sleep(0.001)
            inside[group] -= 1

    async def main() -> None:
        await asyncio.gather(*(write(g) for g in [g1, g2] * 10))

    asyncio.run(main())
    assert peak == {g1: width, g2: width}
    assert len(gate) == 0


def test_width_zero_is_no_gate() -> None:
    gate = GroupGate(0)
    g = uuid.uuid4()
    count = 0
    peak = 0

    async def write() -> None:
        nonlocal count, peak
        async with gate.enter(g, 5):
            count += 1
            peak = max(peak, count)
            await asyncio.sleep(0.001)
            count -= 1

    async def main() -> None:
        await asyncio.gather(*(write() for _ in range(8)))

    asyncio.run(main())
    assert peak == 8


def test_gate_releases_on_error() -> None:
    gate = GroupGate(1)
    g = uuid.uuid4()

    async def main() -> None:
        with pytest.raises(RuntimeError):
            async with gate.enter(g, 5):
                raise RuntimeError("boom")
        async with gate.enter(g, 5):  # would hang if the slot leaked
            pass

    asyncio.run(asyncio.wait_for(main(), 2))
    assert len(gate) == 0


def test_gate_wait_is_bounded_then_bypassed() -> None:
    gate = GroupGate(1)
    g = uuid.uuid4()
    order: list[str] = []

    async def slow() -> None:
        async with gate.enter(g, 5):
            order.append("slow in")
            await asyncio.sleep(0.5)
            order.append("slow out")

    async def impatient() -> None:
        await asyncio.sleep(0.01)
        async with gate.enter(g, 0.05):  # gives up waiting and goes on without the gate
            order.append("impatient in")

    async def main() -> None:
        await asyncio.gather(slow(), impatient())

    asyncio.run(main())
    assert order == ["slow in", "impatient in", "slow out"]
    assert len(gate) == 0
