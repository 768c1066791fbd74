"""Interpretations: versioned models that judge facts, e.g. p(parked) per leg end."""

from parkloop.interpret.labels import MATCH_M, MATCH_S, leg_end_labels

__all__ = ["MATCH_M", "MATCH_S", "leg_end_labels"]
