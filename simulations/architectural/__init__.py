"""The architectural lessons' studies."""
