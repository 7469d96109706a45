"""Counters and histograms for the production classes, through ``prometheus_client``.

Picture the meters of a block of flats: every flat has its own gas meter, all of the same make,
and the reader copies them into one book. Each production object owns one
``CollectorRegistry`` (its meter cupboard), so two breakers in one process never mix their
counts, a test reads exactly one object's numbers, and a service publishes them the usual way:
``prometheus_client.generate_latest(obj.metrics.registry)``, or by mounting the registry on its
``/metrics`` endpoint.

Every object counts its events in one labelled counter, ``<prefix>_events_total{event="..."}``,
and times what it must in histograms named ``<prefix>_<name>``; ``counts`` reads the counter back
as a ``collections.Counter`` for a quick look in a notebook or a test.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["Instruments"]


class Instruments:
    """One object's metrics: a registry of its own, an events counter, and its histograms."""

    def __init__(self, prefix: str, what: str) -> None:
        self.prefix = prefix
        self.registry = CollectorRegistry()
        self._events = Counter(f"{prefix}_events", f"{what}, by event", ["event"],
                               registry=self.registry)

    def count(self, event: str, amount: float = 1) -> None:
        """Add ``amount`` to the counter of ``event`` (thread-safe)."""
        self._events.labels(event).inc(amount)

    def histogram(self, name: str, documentation: str,
                  buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS) -> Histogram:
        """A histogram ``<prefix>_<name>`` in this object's registry (bucket bounds in the
        histogram's unit; the default buckets suit latencies in seconds)."""
        return Histogram(f"{self.prefix}_{name}", documentation, buckets=buckets,
                         registry=self.registry)

    def observed(self, name: str) -> int:
        """How many values the histogram ``<prefix>_<name>`` has observed."""
        return int(self.registry.get_sample_value(f"{self.prefix}_{name}_count") or 0)

    @property
    def counts(self) -> Tally[str]:
        """The events counted so far, read back from the registry: {event: count}."""
        counts: Tally[str] = Tally()
        for metric in self._events.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    value = sample.value
                    counts[sample.labels["event"]] = int(value) if value.is_integer() else value
        return counts

    def exposition(self) -> str:
        """The registry in Prometheus's text format, as a scrape of ``/metrics`` would see it."""
        return generate_latest(self.registry).decode()
