"""The distributed-data lessons' patterns."""
