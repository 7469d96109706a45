"""Performance patterns: load balancing, auto-scaling, request batching, hedged requests, read
replicas, chunking and adaptive concurrency limits."""
