"""Samplers of our own: :class:`GPSampler`, Gaussian-process BO on scikit-learn (no PyTorch);
:class:`TPESampler`, Optuna's TPE reading the study once per trial rather than per parameter."""

from optmpp.samplers.gp import GPSampler
from optmpp.samplers.tpe import TPESampler

__all__ = ["GPSampler", "TPESampler"]
