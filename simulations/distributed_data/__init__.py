"""The distributed-data lessons' studies."""
