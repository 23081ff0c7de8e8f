"""bayes-scaling: probabilistic scaling-law inference.

The public API is imported lazily (PEP 562) so that ``import bayes_scaling`` does not start JAX:
the command line configures JAX's devices and compilation cache before the first JAX import.
"""

from importlib import import_module

__version__ = "0.1.0"

_API = {
    "fit": "bayes_scaling.inference",
    "load_fit": "bayes_scaling.inference",
    "save_fit": "bayes_scaling.inference",
    "posterior_draws": "bayes_scaling.inference",
    "summarize": "bayes_scaling.inference",
    "load_dataset": "bayes_scaling.datasets",
    "list_datasets": "bayes_scaling.datasets",
    "get_law": "bayes_scaling.laws",
    "register_law": "bayes_scaling.laws",
    "LawSpec": "bayes_scaling.laws",
    "ParamSpec": "bayes_scaling.laws",
    "LAWS": "bayes_scaling.laws",
    "PriorSet": "bayes_scaling.priors",
    "DataError": "bayes_scaling.data",
    "predict_frontier": "bayes_scaling.predict",
    "compare_laws": "bayes_scaling.compare",
    "contrast": "bayes_scaling.compare",
    "allocate": "bayes_scaling.decide",
    "compute_for_target": "bayes_scaling.decide",
    "choose_batch_sizes": "bayes_scaling.decide",
}

__all__ = ["__version__", *_API]  # noqa: PLE0604 - the lazily imported names


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'bayes_scaling' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
