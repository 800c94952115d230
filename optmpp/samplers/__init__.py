"""Samplers of our own: :class:`GPSampler`, Gaussian-process BO on scikit-learn (no PyTorch)."""

from optmpp.samplers.gp import GPSampler

__all__ = ["GPSampler"]
