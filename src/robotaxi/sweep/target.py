"""The smallest fleet that meets a service target, from results or by bisection.

A target is a comma-separated list of KPI conditions, `wait_p95_s<=300,served_pct>=95`.
A fleet size meets it for a group (the same city, market share, start time … but the fleet
and the seed) when the KPIs' means over the group's seeds meet every condition.
"""

from __future__ import annotations

import operator
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from robotaxi.sweep.errors import SweepError
from robotaxi.sweep.results import OK
from robotaxi.sweep.spec import COLUMN_OF, Cell

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "==": operator.eq,
}  # fmt: skip
_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|<|>)\s*([-+0-9.eE]+)\s*$")
# columns that describe a run but do not tell groups apart
_NOT_GROUPING = frozenset({"fleet", "seed"})
# a group is told apart by these columns (the rest of a row is results, not parameters)
GROUP_COLUMNS = (
    "city", "market_share", "requests_per_hour", "start", "hours", "policy",
)  # fmt: skip


@dataclass(frozen=True)
class Condition:
    kpi: str
    op: str
    value: float

    def met(self, observed: float) -> bool:
        return _OPERATORS[self.op](observed, self.value)

    def __str__(self) -> str:
        return f"{self.kpi}{self.op}{self.value:g}"


@dataclass(frozen=True)
class Target:
    conditions: tuple[Condition, ...]

    def __str__(self) -> str:
        return ",".join(str(c) for c in self.conditions)

    def met(self, kpis: Mapping[str, Any]) -> bool:
        """True when every condition holds; a missing KPI (no rides) meets nothing."""
        for c in self.conditions:
            value = kpis.get(c.kpi)
            if value is None or not c.met(float(value)):
                return False
        return True


def parse_target(text: str, known: Iterable[str] | None = None) -> Target:
    """`"wait_p95_s<=300,served_pct>=95"` -> Target; `SweepError` names what is wrong."""
    conditions = []
    for part in text.split(","):
        match = _CONDITION.match(part)
        if match is None:
            raise SweepError(
                f"--target: {part.strip()!r} is not KPI<=VALUE (or >=, <, >, ==); "
                "e.g. --target 'wait_p95_s<=300,served_pct>=95'"
            )
        kpi, op, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            raise SweepError(f"--target: {value!r} in {part.strip()!r} is not a number") from None
        conditions.append(Condition(kpi, op, number))
    if known is not None:
        known = set(known)
        for c in conditions:
            if c.kpi not in known:
                raise SweepError(
                    f"--target: the results have no KPI {c.kpi!r}; use one of "
                    f"{', '.join(sorted(known))}"
                )
    return Target(tuple(conditions))


def group_key(row: Mapping[str, Any], columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row.get(c) for c in columns)


def grouping_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The parameter columns that differ between rows, fleet and seed aside (plus the city
    and market share, always shown)."""
    columns = list(GROUP_COLUMNS)
    extra = sorted(
        {
            k for row in rows for k in row.get("settings", {})
            if "." in k and k not in COLUMN_OF
        }
    )  # fmt: skip
    # demand is a market share in San Francisco, a request rate on the grid city
    cities = {r.get("city") for r in rows}
    always = {"city", "market_share" if cities - {"grid"} else "requests_per_hour"}
    shown = [c for c in columns if c in always or len({repr(r.get(c)) for r in rows}) > 1]
    for key in extra:
        if len({repr(r.get("settings", {}).get(key)) for r in rows}) > 1:
            shown.append(key)
    return shown


def _value(row: Mapping[str, Any], column: str) -> Any:
    return row.get(column, row.get("settings", {}).get(column))


@dataclass(frozen=True)
class Answer:
    """One group's smallest fleet meeting the target (None: none of the fleets tried did)."""

    group: dict[str, Any]
    fleet: int | None
    status: str  # "met", "below range" (the smallest tried meets), "above range" (none meets)
    tried: tuple[int, ...]
    kpis_at_answer: dict[str, float | None]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.group, "smallest_fleet": self.fleet, "status": self.status,
            "fleets_tried": list(self.tried), **self.kpis_at_answer,
        }  # fmt: skip


def fleet_means(
    rows: Sequence[Mapping[str, Any]], kpis: Sequence[str]
) -> dict[int, dict[str, float | None]]:
    """Per fleet size, each KPI's mean over the rows (seeds) that have it."""
    by_fleet: dict[int, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_fleet.setdefault(int(row["fleet"]), []).append(row)
    means: dict[int, dict[str, float | None]] = {}
    for fleet, group in sorted(by_fleet.items()):
        means[fleet] = {}
        for kpi in kpis:
            values = [float(r[kpi]) for r in group if r.get(kpi) is not None]
            means[fleet][kpi] = round(statistics.fmean(values), 3) if values else None
    return means


def answer(rows: Iterable[Mapping[str, Any]], target: Target) -> list[Answer]:
    """The smallest fleet meeting `target` per group of finished rows, smallest group first."""
    done = [r for r in rows if r.get("status") == OK]
    if not done:
        raise SweepError("no finished cells to answer from: run the sweep first (same --out)")
    known = {k for r in done for k, v in r.items() if isinstance(v, int | float)}
    for c in target.conditions:
        if c.kpi not in known:
            raise SweepError(
                f"--target: the results have no KPI {c.kpi!r}; use one of "
                f"{', '.join(sorted(known - _NOT_GROUPING))}"
            )
    columns = grouping_columns(done)
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in done:
        groups.setdefault(tuple(_value(row, c) for c in columns), []).append(row)
    kpis = [c.kpi for c in target.conditions]
    answers = []
    for key in sorted(groups, key=repr):
        means = fleet_means(groups[key], kpis)
        fleets = sorted(means)
        meeting = [f for f in fleets if target.met(means[f])]
        if not meeting:
            fleet, status = None, "above range"
        elif meeting[0] == fleets[0]:
            fleet, status = meeting[0], "at or below the smallest tried"
        else:
            fleet, status = meeting[0], "met"
        shown = means[fleet] if fleet is not None else means[fleets[-1]]
        answers.append(
            Answer(
                group=dict(zip(columns, key, strict=True)),
                fleet=fleet,
                status=status,
                tried=tuple(fleets),
                kpis_at_answer=dict(shown),
            )
        )
    return answers


@dataclass
class Bisection:
    """Bisecting one group's fleet size on [lo, hi]. The first round probes both ends; after
    it `lo` is known to fail and `hi` to meet, and each round probes the middle."""

    base: dict[str, Any]  # the group's settings (dotted keys), fleet and seed aside
    lo: int
    hi: int
    step: int = 1  # the answer is good to this many cars
    probed: bool = False
    outcome: str | None = None  # "met", "above range", "at or below the smallest tried"

    def next_fleets(self) -> list[int]:
        if self.outcome is not None:
            return []
        if not self.probed:
            return [self.lo, self.hi]
        return [(self.lo + self.hi) // 2]

    def update(self, met: Mapping[int, bool]) -> None:
        """Take the probes' verdicts (fleet -> target met)."""
        if not self.probed:
            self.probed = True
            if not met[self.hi]:
                self.outcome = "above range"
            elif met[self.lo]:
                self.hi, self.outcome = self.lo, "at or below the smallest tried"
            elif self.hi - self.lo <= self.step:
                self.outcome = "met"
            return
        [(fleet, ok)] = met.items()
        if ok:
            self.hi = fleet
        else:
            self.lo = fleet
        if self.hi - self.lo <= self.step:
            self.outcome = "met"


def fleet_search(
    groups: Sequence[Mapping[str, Any]],
    seeds: Sequence[int],
    lo: int,
    hi: int,
    target: Target,
    run: Callable[[list[Cell]], list[dict[str, Any]]],
    step: int = 1,
) -> list[Bisection]:
    """Bisect the fleet size of every group at once: each round runs one probe per open
    group (× seeds) through `run` (which skips finished cells, so a search resumes), until
    the smallest meeting fleet is known to within `step` cars."""
    searches = [Bisection(dict(base), lo, hi, step) for base in groups]
    while True:
        probes: list[tuple[Bisection, int, list[Cell]]] = []
        for search in searches:
            for fleet in search.next_fleets():
                cells = [Cell.of({**search.base, "fleet.size": fleet, "seed": s}) for s in seeds]
                probes.append((search, fleet, cells))
        if not probes:
            return searches
        rows = {r["cell_id"]: r for r in run([c for _, _, cells in probes for c in cells])}
        verdicts: dict[int, dict[int, bool]] = {}
        for search, fleet, cells in probes:
            got = [rows[c.cell_id] for c in cells if c.cell_id in rows]
            ok = [r for r in got if r.get("status") == OK]
            if len(ok) < len(cells):
                raise SweepError(
                    f"fleet search: a probe at fleet {fleet} failed "
                    f"({next((r.get('error') for r in got if r.get('error')), 'no result')}); "
                    "see results.json, fix it and rerun to resume"
                )
            means = fleet_means(ok, [c.kpi for c in target.conditions])[fleet]
            verdicts.setdefault(id(search), {})[fleet] = target.met(means)
        for search in searches:
            if id(search) in verdicts:
                search.update(verdicts[id(search)])
