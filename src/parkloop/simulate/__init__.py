"""The phone simulator: synthetic raw event streams with ground truth kept apart."""

from parkloop.simulate.run import SimulationSummary, simulate
from parkloop.simulate.scenarios import SCENARIOS

__all__ = ["SCENARIOS", "SimulationSummary", "simulate"]
