"""The benchmark's model: quantities, cases, metrics, targets and the results of a run.

Plain dataclasses shared by the case catalogue (:mod:`seigr_stt.bench.cases`), the orchestration
(:mod:`seigr_stt.bench.orchestrate`), the report (:mod:`seigr_stt.bench.report`) and the plots.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from seigr_stt.bench import quic
from seigr_stt.bench.common import JSON

__all__ = [
    "Case",
    "CaseFilter",
    "CaseResult",
    "Metric",
    "Quantity",
    "Suite",
    "Target",
]


@dataclass(frozen=True)
class Quantity:
    key: str
    label: str
    unit: str
    higher_is_better: bool = True
    digits: int = 0


@dataclass(frozen=True)
class Case:
    metric: str
    system: str
    server: str
    client: str
    params: JSON
    variant: str = ""
    pin: tuple[int, ...] | None = None
    relay: JSON | None = None
    timeout_s: float = 60.0
    netns: bool = False  # server and client across the veth path (seigr_stt.bench.netns)
    loop: str = ""  # "uvloop" or "asyncio" for this case only ("": the run's loop)

    @property
    def name(self) -> str:
        return f"{self.system} [{self.variant}]" if self.variant else self.system

    @property
    def skip_reason(self) -> str:
        if self.server == "aioquic" and not quic.AVAILABLE:
            return quic.REASON
        return ""


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    quantities: tuple[Quantity, ...]
    cases: tuple[Case, ...]
    rounds: int
    plot: str = ""  # "loss" or "size": the cases are points of a curve


@dataclass(frozen=True)
class Target:
    number: str
    text: str
    metric: str
    quantity: str
    system: str
    op: str  # ">=" or "<="
    threshold: float
    peer: str = ""  # a system of the same metric: the value is a per-round ratio
    reference: float = 0.0  # else a fixed figure to divide by (recorded, not run here)
    reference_name: str = ""
    system_b: str = ""  # or a second case of the same system (rotation: with vs without)
    worst: bool = False  # judge by the worst round, not the median


@dataclass
class CaseResult:
    case: Case
    values: list[dict[str, float] | None] = field(default_factory=list)
    raw: list[JSON | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def series(self, quantity: str) -> list[float | None]:
        return [
            None if v is None or not math.isfinite(v.get(quantity, math.nan)) else v[quantity]
            for v in self.values
        ]

    def finite(self, quantity: str) -> list[float]:
        return [v for v in self.series(quantity) if v is not None]


@dataclass
class Suite:
    metrics: list[Metric]
    results: dict[tuple[str, str], CaseResult]  # (metric, case name)
    env: JSON
    command: str
    elapsed_s: float = 0.0

    def result(self, metric: str, name: str) -> CaseResult | None:
        return self.results.get((metric, name))


CaseFilter = Callable[[Case], bool]
