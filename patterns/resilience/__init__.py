"""Resilience patterns: breakers, bulkheads, retries, timeouts, load shedding, backpressure,
failover and failure detection."""
