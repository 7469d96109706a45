"""The calling side: where requests come from and how long callers are willing to wait.

Picture customers phoning a help desk. ``RequestSource`` is the stream of calls, replaying the
arrival times of a workload and handing each request (with its key and class) to a ``send``
function such as ``ServerPool.submit``. ``ClosedLoopUsers`` are a fixed number of people who
each call, wait for the answer, think, and call again. ``Client`` is a caller with patience: it
hangs up after ``timeout_s`` and records TIMEOUT. Hanging up does not cancel the work: the
service keeps the request and finishes it (wasted work, as in real RPC systems), and a caller
that holds a worker while it waits, for example a ``ServerPool`` handler, holds it until the
answer or the timeout, whichever comes first.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import simpy
from simpy.events import Event, Timeout

from patterns.checks import check_int, check_non_negative, check_positive
from simulations.distributions import Distribution
from simulations.records import Outcome, RequestLog
from simulations.servers import Service
from simulations.workloads import ArrivalProcess, ZipfKeys

__all__ = ["Client", "ClosedLoopUsers", "RequestSource"]


class Client:
    """Calls ``service`` and gives up after ``timeout_s`` (None: waits forever).

    ``call`` returns an event that succeeds with the service's ``Outcome``, or with TIMEOUT if
    the timer fires first. Each call is a row in ``log`` as the caller saw it: ``start`` is the
    call time and ``end`` the answer or give-up time.
    """

    def __init__(
        self,
        env: simpy.Environment,
        service: Service,
        timeout_s: float | None = None,
        log: RequestLog | None = None,
    ) -> None:
        self.env = env
        self.service = service
        self.timeout_s = None if timeout_s is None else check_positive("timeout_s", timeout_s)
        self.log = log if log is not None else RequestLog()

    def call(self, key: int = -1, cls: int = -1) -> Event:
        """Send one request; the event's value is its ``Outcome``."""
        now = self.env.now
        row = self.log.add(now, key, cls)
        self.log.started(row, now)
        result = Event(self.env)

        def settle(outcome: int) -> None:
            if not result.triggered:
                self.log.finished(row, self.env.now, outcome)
                result.succeed(Outcome(outcome))

        self.service.call(key, cls).callbacks.append(lambda answer: settle(answer.value))
        if self.timeout_s is not None:
            Timeout(self.env, self.timeout_s).callbacks.append(
                lambda _: settle(Outcome.TIMEOUT))
        return result


class RequestSource:
    """Replays an arrival process, calling ``send(key, cls)`` at each arrival.

    Arrival times are generated up front (``n`` requests, or until ``horizon_s``), relative to
    the time the source is created. ``keys`` draws a key per request; ``class_weights`` draws a
    class id 0, 1, ... per request with those relative weights. Without them, -1 is sent.
    """

    def __init__(
        self,
        env: simpy.Environment,
        arrivals: ArrivalProcess,
        send: Callable[[int, int], object],
        rng: np.random.Generator,
        *,
        n: int | None = None,
        horizon_s: float | None = None,
        keys: ZipfKeys | None = None,
        class_weights: Sequence[float] | None = None,
    ) -> None:
        self.env = env
        self.send = send
        self.times = arrivals.times(rng, n=n, horizon=horizon_s) + env.now
        count = len(self.times)
        self.keys = None if keys is None else keys.sample(rng, count)
        self.classes = None
        if class_weights is not None:
            weights = np.array([check_non_negative("class_weights", w) for w in class_weights])
            if weights.sum() <= 0:
                raise ValueError(f"class_weights must have a positive sum (got {class_weights})")
            self.classes = rng.choice(len(weights), size=count, p=weights / weights.sum())
        self.process = env.process(self._run())

    def _run(self) -> Generator[Event, Any, None]:
        env, send = self.env, self.send
        gaps = np.diff(self.times, prepend=env.now).tolist()
        keys = repeat(-1) if self.keys is None else self.keys.tolist()
        classes = repeat(-1) if self.classes is None else self.classes.tolist()
        for gap, key, cls in zip(gaps, keys, classes, strict=False):
            yield Timeout(env, gap)
            send(key, cls)


class ClosedLoopUsers:
    """``users`` callers, each repeating: think (``think`` time), call ``service``, wait.

    The classic closed system of operational analysis (interactive users with think time Z).
    Runs until the simulation stops.
    """

    def __init__(
        self,
        env: simpy.Environment,
        users: int,
        think: Distribution,
        service: Service,
        rng: np.random.Generator,
    ) -> None:
        self.env = env
        self.think = think
        self.service = service
        self.rng = rng
        self.processes = [env.process(self._user()) for _ in range(check_int("users", users, 1))]

    def _user(self) -> Generator[Event, Any, None]:
        while True:
            yield Timeout(self.env, float(self.think.sample(self.rng)))
            yield self.service.call()
