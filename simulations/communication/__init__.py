"""The communication lessons' studies."""
