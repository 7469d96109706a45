"""The specialized lessons' studies."""
