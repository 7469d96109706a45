"""The security lessons' studies."""
