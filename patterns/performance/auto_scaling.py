"""Auto-scaling: change the number of replicas to follow the load, from a metric and a rule.

Picture a supermarket manager watching the queues: when every till is busy and the lines grow,
they call staff from the back room (who need a few minutes to put on a uniform); when the shop
is quiet, they send people home, but not the moment one line is empty, in case the next bus
arrives. How busy the tills are is the metric, the rule is the policy, the uniform is the
provisioning delay, and "not the moment" is the stabilisation window or the cooldown.

Every policy here answers one question, ``desired(metric, current, now)``: given the observed
metric (mean utilisation per replica, 0.6 = 60 % busy), the replicas asked for so far and the
time in seconds, how many replicas should there be? ``HPAPolicy`` is the Kubernetes Horizontal
Pod Autoscaler's documented rule, ``ThresholdPolicy`` a step-and-cooldown rule of the kind cloud
step-scaling offers, ``PredictivePolicy`` staffs for a forecast of the load. The Level 3
``ProductionAutoscaler`` wraps any of them with limits, a lock, logging and metrics. Nothing here
imports from ``simulations``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from patterns.checks import check_int, check_non_negative, check_positive, check_range
from patterns.metrics import Instruments

__all__ = ["Autoscaler", "HPAPolicy", "PredictivePolicy", "ProductionAutoscaler",
           "ScalingLimits", "ThresholdPolicy", "square_root_replicas"]

log = logging.getLogger(__name__)


class Autoscaler(Protocol):
    """What a scaling policy answers: the replicas wanted now."""

    def desired(self, metric: float, current: int, now: float) -> int: ...


class HPAPolicy:
    """The Kubernetes HPA rule: desired = ⌈current × metric / target⌉, with a tolerance and a
    scale-down stabilisation window.

    Within ``tolerance`` of the target (|metric/target − 1| ≤ 0.1 by default) nothing changes.
    A scale-down takes the *largest* recommendation of the last ``scale_down_window_s`` seconds
    (300 s by default), so a short dip does not remove replicas that the next minute needs;
    a scale-up acts at once (the default scale-up window is 0).
    """

    def __init__(self, target: float = 0.6, tolerance: float = 0.1,
                 scale_down_window_s: float = 300.0) -> None:
        self.target = check_range("target", target, 0.0, 1.0, low_open=True)
        self.tolerance = check_range("tolerance", tolerance, 0.0, 1.0, high_open=True)
        self.scale_down_window_s = check_non_negative("scale_down_window_s", scale_down_window_s)
        self.history: deque[tuple[float, int]] = deque()  # (time, recommendation)

    def recommend(self, metric: float, current: int) -> int:
        """The raw recommendation, before stabilisation."""
        ratio = metric / self.target
        if abs(ratio - 1.0) <= self.tolerance:
            return current
        return math.ceil(current * ratio)

    def desired(self, metric: float, current: int, now: float) -> int:
        recommendation = self.recommend(metric, current)
        self.history.append((now, recommendation))
        while self.history[0][0] < now - self.scale_down_window_s:
            self.history.popleft()
        if recommendation >= current:
            return recommendation
        return min(current, max(r for _, r in self.history))


class ThresholdPolicy:
    """Add ``step`` replicas when the metric is above ``scale_out_at``, remove one when it is
    below ``scale_in_at``, and then do nothing for ``cooldown_s`` seconds."""

    def __init__(self, scale_out_at: float = 0.8, scale_in_at: float = 0.4, step: int = 2,
                 cooldown_s: float = 300.0) -> None:
        self.scale_out_at = check_range("scale_out_at", scale_out_at, 0.0, 1.0, low_open=True)
        self.scale_in_at = check_range("scale_in_at", scale_in_at, 0.0, self.scale_out_at,
                                       high_open=True)
        self.step = check_int("step", step, 1)
        self.cooldown_s = check_non_negative("cooldown_s", cooldown_s)
        self.last_change = -math.inf

    def desired(self, metric: float, current: int, now: float) -> int:
        if now - self.last_change < self.cooldown_s:
            return current
        wanted = current
        if metric > self.scale_out_at:
            wanted = current + self.step
        elif metric < self.scale_in_at:
            wanted = current - 1
        if wanted != current:
            self.last_change = now
        return wanted


def square_root_replicas(arrival_rate: float, service_rate: float, beta: float) -> int:
    """Square-root staffing: ⌈R + β√R⌉ replicas for offered load R = λ/μ (Halfin and Whitt)."""
    load = arrival_rate / service_rate
    return math.ceil(load + beta * math.sqrt(load))


class PredictivePolicy:
    """Staff now for the load forecast ``lead_s`` seconds ahead, with square-root headroom.

    ``forecast(t)`` is the predicted arrival rate (requests/s) at time t, for instance last
    week's rate at the same hour; ``service_rate`` is what one replica serves per second. The
    lead should cover the provisioning delay, so the replicas are ready when the load arrives.
    Where the metric shows more load than forecast, the HPA rule's reactive answer wins.
    """

    def __init__(self, forecast: Callable[[float], float], service_rate: float,
                 lead_s: float = 300.0, beta: float = 1.0, target: float = 0.6) -> None:
        self.forecast = forecast
        self.service_rate = check_positive("service_rate", service_rate)
        self.lead_s = check_non_negative("lead_s", lead_s)
        self.beta = check_non_negative("beta", beta)
        self.target = check_range("target", target, 0.0, 1.0, low_open=True)

    def desired(self, metric: float, current: int, now: float) -> int:
        expected = max(float(self.forecast(now + self.lead_s)), 1e-9)
        planned = square_root_replicas(expected, self.service_rate, self.beta)
        return max(planned, math.ceil(current * metric / self.target))


@dataclass(frozen=True)
class ScalingLimits:
    """Bounds on what any policy may ask: a floor, a ceiling and the largest scale-up in one
    decision (a factor of the current replicas)."""

    min_replicas: int = 1
    max_replicas: int = 100
    max_scale_up_factor: float = 2.0

    def __post_init__(self) -> None:
        check_int("ScalingLimits.min_replicas", self.min_replicas, 1)
        check_int("ScalingLimits.max_replicas", self.max_replicas, self.min_replicas)
        check_range("ScalingLimits.max_scale_up_factor", self.max_scale_up_factor, 1.0,
                    low_open=True)


class ProductionAutoscaler:
    """Any policy, hardened: limits, a missing metric holds the current count, one decision at
    a time (a lock), each change logged, and decisions counted in ``prometheus_client``."""

    def __init__(self, name: str, policy: Autoscaler, limits: ScalingLimits | None = None) -> None:
        self.name = name
        self.policy = policy
        self.limits = limits or ScalingLimits()
        self._lock = threading.Lock()
        self.metrics = Instruments("autoscaler", "Scaling decisions")
        self._replicas = self.metrics.histogram(
            "desired_replicas", "Replicas asked for per decision",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500))

    def desired(self, metric: float | None, current: int, now: float) -> int:
        with self._lock:
            if metric is None or not math.isfinite(metric) or metric < 0:
                self.metrics.count("metric_missing")
                wanted = current
            else:
                wanted = self.policy.desired(metric, current, now)
            ceiling = max(math.floor(current * self.limits.max_scale_up_factor), current + 1)
            if wanted > ceiling:
                self.metrics.count("capped_scale_up")
            wanted = max(self.limits.min_replicas, min(wanted, ceiling, self.limits.max_replicas))
            self.metrics.count("decisions")
            self._replicas.observe(wanted)
            if wanted != current:
                self.metrics.count("scale_up" if wanted > current else "scale_down")
        if wanted != current:
            log.info("%s: %d -> %d replicas (metric %s) at t=%.0f s",
                     self.name, current, wanted, metric, now)
        return wanted
