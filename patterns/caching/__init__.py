"""Caching patterns: cache-aside, eviction policies, TTL expiry, write-through and write-behind,
stampede protection, multi-tier caches and CDNs."""
