"""Prior sets shipped with bayes-scaling (TOML files read through importlib.resources)."""
