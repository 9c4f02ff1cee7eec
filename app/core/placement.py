"""Pure: split many weighted bills into minor units so that every person's net is their exact net, rounded.

A bill (ihatemoney's model) is a signed amount in minor units, paid by one person and owed by its owers in
proportion to their weights: ower j's exact part is amount x w_j / W. The source keeps those parts
exact (ihatemoney: binary floats) and rounds only what it shows, each member's balance; a ledger
needs whole minor units, and the parts of each bill must add up to the bill.

So each part is rounded down or up (never further), each bill's leftover units go to owers whose part
was rounded down, and the leftovers are placed so that every person's net (what they paid minus what
they owe) is their exact net rounded, where possible. The rounded nets need not add up to zero (three
people sharing 10.00: +6.67, -3.33, -3.33); a ledger's must, so the targets are the exact nets
rounded half to even, and where those roundings do not sum to zero, the fewest people whose exact
nets are nearest a rounding boundary move one unit (everyone stays within one unit of the exact net).

Method: start from the largest-remainder split of each bill (quits' own `shares` rule, ties to the
lower index), then move units between owers of one bill, along augmenting paths (person -> bill ->
person), first until every person's unit count is the floor or the ceiling of their exact one, then
towards the targets. Integer and Fraction arithmetic only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True, slots=True, kw_only=True)
class Bill:
    payer: int  # person index
    amount: int  # minor units, signed, non-zero
    owers: tuple[tuple[int, int], ...]  # (person index, positive integer weight), distinct persons


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    parts: list[list[int]]  # per bill, aligned with its owers; each sums to the bill's amount
    moved: list[bool]  # per bill: its parts differ from the plain largest-remainder split
    nets: list[int]  # per person: paid - owed, in minor units; sums to zero
    exact: list[Fraction]  # per person: the exact net
    rounded: list[int]  # per person: the exact net rounded half to even (what the source shows)


def round_half_even(x: Fraction) -> int:
    return round(x)  # Fraction.__round__ rounds half to even, exactly


class _Units:
    """Which owers of each bill get one of its leftover units (their part rounded up), and, for every two
    people X and Y, the bills where X has a unit that Y could take instead (Y's part is not whole, and Y
    has none): the edges along which units move."""

    def __init__(self, eligible: list[list[int]], chosen: list[set[int]], people: int) -> None:
        self.eligible = eligible  # per bill: persons whose exact part is not whole
        self.chosen = chosen  # per bill: persons given a unit
        self.count = [0] * people
        self.swaps: list[dict[int, set[int]]] = [{} for _ in range(people)]  # X → Y → bills
        for b, persons in enumerate(chosen):
            for p in persons:
                self.count[p] += 1
            self._link(b, add=True)

    def _link(self, bill: int, *, add: bool) -> None:
        chosen = self.chosen[bill]
        for giver in chosen:
            for taker in self.eligible[bill]:
                if taker in chosen:
                    continue
                bills = self.swaps[giver].setdefault(taker, set())
                if add:
                    bills.add(bill)
                else:
                    bills.discard(bill)
                    if not bills:
                        del self.swaps[giver][taker]

    def path(self, source: int, wanted: set[int]) -> list[tuple[int, int, int]] | None:
        """Person source gives a unit away, along (giver, bill, taker) steps ending at a person in wanted."""
        parent: dict[int, tuple[int, int]] = {}
        seen, queue = {source}, deque([source])
        while queue:
            giver = queue.popleft()
            for taker, bills in self.swaps[giver].items():
                if taker in seen:
                    continue
                seen.add(taker)
                parent[taker] = (giver, next(iter(bills)))
                if taker in wanted:
                    steps, node = [], taker
                    while node != source:
                        prev, via = parent[node]
                        steps.append((prev, via, node))
                        node = prev
                    return steps[::-1]
                queue.append(taker)
        return None

    def move(self, steps: list[tuple[int, int, int]]) -> None:
        for giver, bill, taker in steps:
            self._link(bill, add=False)
            self.chosen[bill].discard(giver)
            self.chosen[bill].add(taker)
            self._link(bill, add=True)
            self.count[giver] -= 1
            self.count[taker] += 1

    def _drain(self, giving: Callable[[int], bool], taking: Callable[[int], bool]) -> None:
        """While a person for whom giving() holds has a path to one for whom taking() holds, move a unit."""
        people = range(len(self.count))
        wanted = {j for j in people if taking(j)}
        for i in people:
            while wanted and giving(i):
                steps = self.path(i, wanted)
                if steps is None:
                    break
                self.move(steps)
                if not taking(steps[-1][2]):
                    wanted.discard(steps[-1][2])

    def settle(self, high: list[int], low: list[int]) -> None:
        """Bring every count to at most high and at least low, as far as paths allow; people between the
        bounds stay between them."""
        self._drain(lambda i: self.count[i] > high[i], lambda j: self.count[j] < high[j])
        self._drain(lambda i: self.count[i] > low[i], lambda j: self.count[j] < low[j])


def _targets(exact: list[Fraction]) -> list[int]:
    """The exact nets rounded half to even; when those do not sum to zero, the people nearest a rounding
    boundary (ties: the lower index) move by one unit towards it, as few as the sum needs. Each stays
    within one unit of their exact net; the targets sum to zero."""
    target = [round_half_even(x) for x in exact]
    excess = sum(target)
    step = -1 if excess > 0 else 1
    ranked = sorted(range(len(exact)), key=lambda i: (abs(target[i] + step - exact[i]), i))
    for i in ranked[: abs(excess)]:
        target[i] += step
    return target


def place(bills: Sequence[Bill], people: int) -> Placement:
    """Split every bill (see the module docstring); persons are 0..people-1."""
    floors: list[list[int]] = []
    eligible: list[list[int]] = []
    chosen: list[set[int]] = []
    paid, owed_floor = [0] * people, [0] * people
    remainders: list[dict[int, int]] = [{} for _ in range(people)]  # per person: total weight -> sum of remainders
    for bill in bills:
        total = sum(w for _, w in bill.owers)
        split = [divmod(bill.amount * w, total) for _, w in bill.owers]
        leftover = bill.amount - sum(q for q, _ in split)
        ranked = sorted(range(len(split)), key=lambda j: (-split[j][1], j))
        floors.append([q for q, _ in split])
        eligible.append([p for (p, _), (_, r) in zip(bill.owers, split, strict=True) if r])
        chosen.append({bill.owers[j][0] for j in ranked[:leftover]})
        paid[bill.payer] += bill.amount
        for (p, _), (q, r) in zip(bill.owers, split, strict=True):
            owed_floor[p] += q
            if r:
                remainders[p][total] = remainders[p].get(total, 0) + r
    fraction = [sum((Fraction(r, t) for t, r in rem.items()), Fraction(0)) for rem in remainders]
    exact = [paid[i] - owed_floor[i] - fraction[i] for i in range(people)]
    assert sum(exact) == 0, "the exact nets of balanced bills sum to zero"
    target = _targets(exact)
    low = [f.numerator // f.denominator for f in fraction]  # floor: units each must get at least
    high = [-((-f.numerator) // f.denominator) for f in fraction]  # ceiling: at most
    units = _Units(eligible, [set(c) for c in chosen], people)
    units.settle(high, low)
    preferred = [paid[i] - owed_floor[i] - target[i] for i in range(people)]
    units.settle(preferred, preferred)
    parts = [
        [q + (1 if p in units.chosen[b] else 0) for (p, _), q in zip(bill.owers, floors[b], strict=True)]
        for b, bill in enumerate(bills)
    ]
    nets = [paid[i] - owed_floor[i] - units.count[i] for i in range(people)]
    assert sum(nets) == 0 and all(sum(p) == bill.amount for p, bill in zip(parts, bills, strict=True))
    return Placement(
        parts=parts,
        moved=[units.chosen[b] != chosen[b] for b in range(len(bills))],
        nets=nets,
        exact=exact,
        rounded=[round_half_even(x) for x in exact],
    )
