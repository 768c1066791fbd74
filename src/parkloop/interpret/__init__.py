"""Interpretations: versioned models that judge facts, e.g. p(parked) per leg end (issue 4)."""
