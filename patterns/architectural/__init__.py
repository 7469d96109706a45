"""The architectural lessons' patterns."""
