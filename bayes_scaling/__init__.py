"""bayes-scaling: probabilistic scaling-law inference.

The public API is imported lazily (PEP 562) so that ``import bayes_scaling`` does not start JAX:
the command line configures JAX's devices and compilation cache before the first JAX import. The
import itself asks JAX, while it has not started, for one CPU device per core, so that chains
can run side by side (:mod:`bayes_scaling._devices`;
``BAYES_SCALING_HOST_DEVICES=1`` keeps one device).
"""

from importlib import import_module

from bayes_scaling._devices import ask_host_devices

ask_host_devices()

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
    "predict": "bayes_scaling",
    "predict_frontier": "bayes_scaling.predict",
    "calibrate_discrepancy": "bayes_scaling.predict",
    "backtest": "bayes_scaling",
    "calibrate": "bayes_scaling.backtest",
    "fit_many": "bayes_scaling.inference",
    "prepare": "bayes_scaling.inference",
    "allocate_inference_aware": "bayes_scaling.decide",
    "parse_risk": "bayes_scaling.decide",
    "misallocation_cost": "bayes_scaling.misallocation",
    "next_runs": "bayes_scaling.next_runs",
    "model_average": "bayes_scaling.compare",
    "fan_chart": "bayes_scaling.plots",
    "fit_curves": "bayes_scaling.plots",
    "predictive_check": "bayes_scaling.plots",
    "frontier": "bayes_scaling.plots",
    "posteriors": "bayes_scaling.plots",
    "write_report": "bayes_scaling.report",
    "compare_laws": "bayes_scaling.compare",
    "contrast": "bayes_scaling.compare",
    "allocate": "bayes_scaling.decide",
    "compute_for_target": "bayes_scaling.decide",
    "choose_batch_sizes": "bayes_scaling.decide",
}

__all__ = ["__version__", *_API]  # noqa: PLE0604 - the lazily imported names


def __getattr__(name: str):
    if _API.get(name) == "bayes_scaling":  # a package that is called like its main function
        return import_module(f"bayes_scaling.{name}")
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'bayes_scaling' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
