"""Priors as data: TOML files under ``priors/`` parsed into small frozen dataclasses.

A prior set names one distribution per law parameter (``[params]``), the noise model's priors
(``[noise]``: ``sigma``, the scale of log-target residuals, and ``nu``, the Student-t degrees of
freedom) and the half-normal scale of the between-group standard deviation used by partial
pooling (``[population_sd]``, on the log scale of positive parameters).

Only the distributions in :data:`DISTRIBUTIONS` are accepted, with exactly their arguments.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "DISTRIBUTIONS",
    "Prior",
    "PriorSet",
    "available_prior_sets",
    "load_prior_set",
    "resolve_priors",
]

# name -> (required arguments, optional arguments with defaults)
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "normal": (("loc", "scale"), {}),
    "lognormal": (("loc", "scale"), {}),
    "halfnormal": (("scale",), {}),
    "halfcauchy": (("scale",), {}),
    "truncated_normal": (("loc", "scale", "low"), {"high": None}),
    "uniform": (("low", "high"), {}),
    "gamma": (("concentration", "rate"), {}),
    "exponential": (("rate",), {}),
    "student_t": (("df", "loc", "scale"), {}),
    "fixed": (("value",), {}),
}

_POSITIVE_ARGS = ("scale", "concentration", "rate", "df")


@dataclasses.dataclass(frozen=True)
class Prior:
    """One prior distribution, by whitelisted name and keyword arguments.

    Examples
    --------
    >>> Prior.from_dict({"dist": "lognormal", "loc": 0.5, "scale": 0.5}).support
    (0.0, inf)
    """

    dist: str
    args: tuple[tuple[str, float | None], ...]

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], where: str = "prior") -> Prior:
        if not isinstance(spec, Mapping):
            raise TypeError(
                f"{where}: expected a table like {{dist = 'normal', loc = 0, scale = 1}}; got "
                f"{spec!r}"
            )
        spec = dict(spec)
        name = spec.pop("dist", None)
        if name is None:
            if set(spec) == {"value"}:
                name = "fixed"
            else:
                raise ValueError(
                    f"{where}: missing 'dist'; expected one of {', '.join(DISTRIBUTIONS)}"
                )
        if name not in DISTRIBUTIONS:
            raise ValueError(
                f"{where}: unknown distribution {name!r}; expected one of "
                f"{', '.join(DISTRIBUTIONS)}"
            )
        required, optional = DISTRIBUTIONS[name]
        missing = [a for a in required if a not in spec]
        unknown = [a for a in spec if a not in required and a not in optional]
        if missing or unknown:
            detail = "; ".join(
                ([f"missing {missing}"] if missing else [])
                + ([f"unexpected {unknown}"] if unknown else [])
            )
            raise ValueError(f"{where}: {name} takes {list(required) + list(optional)}: {detail}")
        args: dict[str, float | None] = dict(optional)
        for key, value in spec.items():
            if value is None and key in optional:
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise ValueError(
                    f"{where}: argument {key!r} must be a finite number; got {value!r}"
                )
            args[key] = float(value)
            if key in _POSITIVE_ARGS and value <= 0:
                raise ValueError(f"{where}: argument {key!r} must be > 0; got {value!r}")
        low, high = args.get("low"), args.get("high")
        if name == "uniform" and not (low is not None and high is not None and low < high):
            raise ValueError(
                f"{where}: uniform needs low < high; got low={args['low']}, high={args['high']}"
            )
        if name == "truncated_normal" and high is not None and not (low is not None and low < high):
            raise ValueError(f"{where}: truncated_normal needs low < high")
        ordered = tuple((k, args[k]) for k in list(required) + list(optional))
        return cls(dist=name, args=ordered)

    @property
    def kwargs(self) -> dict[str, float | None]:
        return dict(self.args)

    def to_dict(self) -> dict[str, Any]:
        return {"dist": self.dist, **{k: v for k, v in self.args if v is not None}}

    @property
    def support(self) -> tuple[float, float]:
        kw = self.kwargs
        inf = math.inf
        if self.dist in ("lognormal", "halfnormal", "halfcauchy", "gamma", "exponential"):
            return (0.0, inf)
        low, high, value = (_number(kw.get(k)) for k in ("low", "high", "value"))
        if self.dist == "truncated_normal":
            return (low, inf if kw["high"] is None else high)
        if self.dist == "uniform":
            return (low, high)
        if self.dist == "fixed":
            return (value, value)
        return (-inf, inf)

    def check_support(self, constraint: str, where: str = "prior") -> None:
        """Refuse a prior whose support leaves the parameter's constraint."""
        low, _ = self.support
        if constraint == "positive" and low < 0:
            raise ValueError(
                f"{where}: prior {self.dist} has support starting at {low}, but the parameter "
                "must be positive; use lognormal, halfnormal, gamma or a truncated_normal with "
                "low >= 0"
            )

    def to_numpyro(self):
        """The numpyro distribution (imported lazily)."""
        import numpyro.distributions as dist

        kw = self.kwargs
        if self.dist == "normal":
            return dist.Normal(kw["loc"], kw["scale"])
        if self.dist == "lognormal":
            return dist.LogNormal(kw["loc"], kw["scale"])
        if self.dist == "halfnormal":
            return dist.HalfNormal(kw["scale"])
        if self.dist == "halfcauchy":
            return dist.HalfCauchy(kw["scale"])
        if self.dist == "truncated_normal":
            return dist.TruncatedNormal(kw["loc"], kw["scale"], low=kw["low"], high=kw["high"])
        if self.dist == "uniform":
            return dist.Uniform(kw["low"], kw["high"])
        if self.dist == "gamma":
            return dist.Gamma(kw["concentration"], kw["rate"])
        if self.dist == "exponential":
            return dist.Exponential(kw["rate"])
        if self.dist == "student_t":
            return dist.StudentT(kw["df"], kw["loc"], kw["scale"])
        raise ValueError(f"prior {self.dist!r} has no distribution to sample from")


_DEFAULT_NOISE = {
    "sigma": {"dist": "halfnormal", "scale": 0.1},
    "nu": {"dist": "gamma", "concentration": 2.0, "rate": 0.1},
}
DEFAULT_POPULATION_SD = 0.5


@dataclasses.dataclass(frozen=True)
class PriorSet:
    """Priors for one law: parameters, noise and between-group spread.

    Attributes
    ----------
    params : dict of str to Prior
        One prior per law parameter.
    noise : dict of str to Prior
        ``sigma`` (residual scale of the log target) and ``nu`` (Student-t degrees of freedom;
        ``{value = 4}`` fixes it).
    population_sd : dict of str to float
        Half-normal scale of each pooled parameter's between-group sd, on the unconstrained
        scale (log scale for positive parameters); ``default`` applies to the rest.
    name, law, description : str
        Labels recorded with a fit.
    """

    params: dict[str, Prior]
    noise: dict[str, Prior] = dataclasses.field(default_factory=dict)
    population_sd: dict[str, float] = dataclasses.field(default_factory=dict)
    name: str = "custom"
    law: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        noise = {k: Prior.from_dict(v, f"noise prior {k!r}") for k, v in _DEFAULT_NOISE.items()}
        noise.update(self.noise)
        object.__setattr__(self, "noise", noise)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], name: str = "custom") -> PriorSet:
        """Build from a mapping with ``params`` (or parameter tables at top level), ``noise`` and
        ``population_sd``."""
        spec = dict(spec)
        if "params" not in spec:  # a flat {"E": {...}, "alpha": {...}} mapping
            reserved = {"noise", "population_sd", "name", "law", "description"}
            spec = {
                "params": {k: v for k, v in spec.items() if k not in reserved},
                **{k: v for k, v in spec.items() if k in reserved},
            }
        unknown = sorted(
            set(spec) - {"params", "noise", "population_sd", "name", "law", "description"}
        )
        if unknown:
            raise ValueError(
                f"prior set {name!r}: unknown sections {unknown}; expected params, noise, "
                "population_sd"
            )
        params = {
            k: Prior.from_dict(v, f"prior for {k!r}")
            for k, v in dict(spec.get("params", {})).items()
        }
        noise_spec = dict(spec.get("noise", {}))
        bad_noise = sorted(set(noise_spec) - set(_DEFAULT_NOISE))
        if bad_noise:
            raise ValueError(
                f"prior set {name!r}: unknown noise priors {bad_noise}; expected sigma, nu"
            )
        noise = {k: Prior.from_dict(v, f"noise prior {k!r}") for k, v in noise_spec.items()}
        if "sigma" in noise:
            noise["sigma"].check_support("positive", "noise prior 'sigma'")
        if "nu" in noise and noise["nu"].dist != "fixed":
            noise["nu"].check_support("positive", "noise prior 'nu'")
        pop = {}
        for k, v in dict(spec.get("population_sd", {})).items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"population_sd for {k!r} must be a number > 0; got {v!r}")
            pop[k] = float(v)
        return cls(
            params=params,
            noise=noise,
            population_sd=pop,
            name=str(spec.get("name", name)),
            law=str(spec.get("law", "")),
            description=str(spec.get("description", "")),
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> PriorSet:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"prior file {str(path)!r} does not exist")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"prior file {str(path)!r} is not valid TOML: {exc}") from None
        return cls.from_dict(data, name=data.get("name", path.stem))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "law": self.law,
            "description": self.description,
            "params": {k: v.to_dict() for k, v in self.params.items()},
            "noise": {k: v.to_dict() for k, v in self.noise.items()},
            "population_sd": dict(self.population_sd),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_toml(self) -> str:
        """Serialise back to the TOML format of ``priors/``."""

        def table(d: Mapping[str, Any]) -> str:
            return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in d.items()) + " }"

        lines = [f"name = {json.dumps(self.name)}", f"law = {json.dumps(self.law)}"]
        lines.append(f"description = {json.dumps(self.description)}")
        lines.append("\n[params]")
        lines += [f"{k} = {table(v.to_dict())}" for k, v in self.params.items()]
        lines.append("\n[noise]")
        lines += [f"{k} = {table(v.to_dict())}" for k, v in self.noise.items()]
        if self.population_sd:
            lines.append("\n[population_sd]")
            lines += [f"{k} = {v!r}" for k, v in self.population_sd.items()]
        return "\n".join(lines) + "\n"

    def pop_sd(self, param: str) -> float:
        return self.population_sd.get(
            param, self.population_sd.get("default", DEFAULT_POPULATION_SD)
        )

    def for_law(self, law: str) -> PriorSet:
        return dataclasses.replace(self, law=law)

    def merged(self, override: PriorSet) -> PriorSet:
        """This set with the parameters, noise and spreads that ``override`` names replaced."""
        noise = dict(self.noise)
        noise.update({k: v for k, v in override.noise.items() if k in override._explicit_noise()})
        return PriorSet(
            params={**self.params, **override.params},
            noise=noise,
            population_sd={**self.population_sd, **override.population_sd},
            name=override.name,
            law=self.law,
            description=override.description or self.description,
        )

    def _explicit_noise(self) -> set[str]:
        defaults = {k: Prior.from_dict(v) for k, v in _DEFAULT_NOISE.items()}
        return {k for k, v in self.noise.items() if defaults.get(k) != v}


def _prior_dir():
    return resources.files("bayes_scaling._priors")


def available_prior_sets() -> list[str]:
    """Names of the prior sets shipped with the package (``priors/*.toml``)."""
    return sorted(
        p.name[: -len(".toml")] for p in _prior_dir().iterdir() if p.name.endswith(".toml")
    )


def load_prior_set(name: str) -> PriorSet:
    """Load a shipped prior set by name (``"chinchilla"``, ``"chinchilla-literature"``, ...)."""
    res = _prior_dir().joinpath(f"{name}.toml")
    if not res.is_file():
        raise KeyError(
            f"unknown prior set {name!r}; available: {', '.join(available_prior_sets())}"
        )
    data = tomllib.loads(res.read_text())
    return PriorSet.from_dict(data, name=name)


def resolve_priors(
    law, priors: str | Path | Mapping[str, Any] | PriorSet | None = None
) -> PriorSet:
    """The priors a fit uses: the law's defaults, overridden by what the user passes.

    Parameters
    ----------
    law : LawSpec
        The law being fitted.
    priors : None, str, path, mapping or PriorSet
        ``None`` keeps the defaults; a string is a shipped set's name or a TOML path; a mapping
        or PriorSet may name only some parameters.

    Raises
    ------
    ValueError
        When the override names a parameter the law does not have, or a prior whose support
        does not fit the parameter.
    """
    base = law.priors
    if priors is None:
        return base
    if isinstance(priors, PriorSet):
        override = priors
    elif isinstance(priors, Mapping):
        override = PriorSet.from_dict(priors)
    elif isinstance(priors, (str, Path)):
        text = str(priors)
        if text.endswith(".toml") or Path(text).exists():
            override = PriorSet.from_toml(text)
        else:
            override = load_prior_set(text)
    else:
        raise TypeError(
            "priors must be None, a name, a TOML path, a dict or a PriorSet; got "
            f"{type(priors).__name__}"
        )
    unknown = sorted(set(override.params) - set(law.param_names))
    if unknown:
        raise ValueError(
            f"priors {override.name!r} name parameters {unknown} that law {law.name!r} does not "
            f"have; its parameters are {list(law.param_names)}"
        )
    constraints = {p.name: p.constraint for p in law.params}
    for k, v in override.params.items():
        v.check_support(constraints[k], where=f"prior for {k!r}")
    return base.merged(override)


def _number(value: float | None) -> float:
    """A prior argument that validation guarantees is present, as a float (NaN if absent)."""
    return math.nan if value is None else float(value)
