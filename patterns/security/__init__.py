"""The security lessons' patterns."""
