"""Modules that are also their main function.

``bayes_scaling.predict`` is a package (the discrepancy model, the frontier, ...) and its main
function is ``predict``; likewise ``backtest``. Making the module callable lets
``from bayes_scaling import predict`` give something that is called like the function, with the
function's signature and docstring, while ``predict.calibrate_discrepancy`` and
``import bayes_scaling.predict`` keep working.
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any

__all__ = ["make_callable"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__dict__["__call_target__"](*args, **kwargs)


def make_callable(module_name: str, function_name: str) -> None:
    """Make the module ``module_name`` call its attribute ``function_name`` when called."""
    module = sys.modules[module_name]
    target = getattr(module, function_name)
    module.__dict__["__call_target__"] = target
    module.__dict__["__signature__"] = inspect.signature(target)
    module.__class__ = _CallableModule
