"""The figures of the command-line reports: the one implementation of each lives in :mod:`neurokpflow.viz`."""
from __future__ import annotations

from ..viz import plot_activity_rank as activity_rank
from ..viz import plot_training_curves as training_curves
from ..viz import plot_trajectories as trajectories

__all__ = ["training_curves", "activity_rank", "trajectories"]
