"""`relmon simulate`: a synthetic donor population in the contract's event format.

:func:`generate` (pure, deterministic for a seed) yields the input events sorted by
``occurred_at``; :class:`Simulation` also gives the ground truth (latent traits and the cause
of every churn), which never appears in the events. :mod:`~relmon.simulation.params` holds
every parameter with its published source.
"""

from relmon.simulation.generator import Simulation, generate
from relmon.simulation.params import SimulationParams, load_params

__all__ = ["Simulation", "SimulationParams", "generate", "load_params"]
