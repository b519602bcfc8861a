"""What a run measured: every value of every round, reduced to medians for the report."""

from __future__ import annotations

import statistics
from collections import defaultdict


class Results:
    """values[target][metric] holds one value per round; status[target] says why one stopped."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.status: dict[str, str] = {}
        self.floor: dict[str, float] | None = None  # the direct-call Lambda floor

    def add(self, target: str, metric: str, value: float) -> None:
        self.values[target][metric].append(value)

    def add_all(self, target: str, prefix: str, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.add(target, f"{prefix}.{name}", value)

    def get(self, target: str, metric: str) -> float | None:
        """Median over rounds, or None when never measured."""
        values = self.values.get(target, {}).get(metric)
        return statistics.median(values) if values else None

    def rounds(self, target: str, metric: str) -> int:
        return len(self.values.get(target, {}).get(metric, ()))
