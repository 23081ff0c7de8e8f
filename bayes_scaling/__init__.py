"""bayes-scaling: probabilistic scaling-law inference."""
__version__ = "0.1.0"
