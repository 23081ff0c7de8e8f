"""Dataset manifest and embedded demo data of bayes-scaling (read through importlib.resources)."""
