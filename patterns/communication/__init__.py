"""The communication lessons' patterns."""
