"""The foundations lessons' studies."""
