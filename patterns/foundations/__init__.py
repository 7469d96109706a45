"""The foundations lessons' nodes and models (duck-typed to the protocol lab, importing nothing
from simulations)."""
