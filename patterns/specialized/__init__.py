"""The specialized lessons' patterns."""
