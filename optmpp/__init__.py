"""optmpp: hyperparameter optimisation of molecular- and polymer-property models on Optuna."""

__version__ = "0.1.0"
