"""Scaling-law functions, their specs and the ``LAWS`` registry.

Every law is a pure JAX function ``fn(params, x) -> log target`` where ``params`` maps the
paper's parameter symbols to arrays and ``x`` maps covariate names (``"N"``, ``"D"``, ...) to the
*natural logarithm* of the covariate. Working in log space keeps terms such as ``A * N**-alpha``
finite for ``N`` near 1e12 and lets the sum of terms be a ``logaddexp`` chain.

A :class:`LawSpec` bundles the function with parameter specs (constraint, default prior,
reparametrisation hint), the covariates, the modelled column and the reference.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from bayes_scaling import priors as _priors
from bayes_scaling.optima import (
    chinchilla_log_n_opt,
    chinchilla_optimal_exponent,
    kaplan_log_n_opt,
    kaplan_optimal_exponent,
)

__all__ = [
    "LAWS",
    "LawSpec",
    "ParamSpec",
    "batch_steps",
    "broken_power_law",
    "chinchilla",
    "data_constrained",
    "get_law",
    "kaplan",
    "loss_to_loss",
    "power_law",
    "register_law",
]

CONSTRAINTS = ("positive", "real")


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One parameter of a law.

    Parameters
    ----------
    name : str
        The paper's symbol (``"E"``, ``"alpha"``, ...).
    constraint : {"positive", "real"}
        Support of the parameter. Positive parameters are sampled on the log scale.
    description : str
        One line shown by ``bayes-scaling laws``.
    centre : tuple of (str, str | None), optional
        Reparametrisation hint for the sampler: ``("N", "alpha")`` says the parameter is an
        amplitude multiplying ``N**-alpha``; the sampler then works with
        ``log(param) - alpha * log(N_ref)``, the term's log value at the data's reference
        point, which is far less correlated with ``alpha``. ``("N", None)`` says the parameter
        is a scale on the covariate (``log(param) - log(N_ref)``). Public values are
        unchanged: the shift has unit Jacobian.
    """

    name: str
    constraint: str = "positive"
    description: str = ""
    centre: tuple[str, str | None] | None = None


@dataclasses.dataclass(frozen=True)
class LawSpec:
    """A scaling law: function, parameters, covariates, default priors, reference.

    Parameters
    ----------
    name : str
        Registry key.
    fn : callable
        ``fn(params, x) -> log target``; ``x`` holds log covariates.
    params : tuple of ParamSpec
        In sampling order: a parameter named in another's ``centre`` comes first.
    covariates : tuple of str
        Canonical data columns the law reads (``"N"``, ``"D"``, ``"C"``, ``"U"``, ``"B"``,
        ``"steps"``).
    formula : str
        Human-readable formula.
    reference : str
        Paper that introduced the form.
    priors : PriorSet
        Default priors, one per parameter.
    target : str
        Column the law predicts (``"loss"`` or ``"steps"``).
    log_n_opt : callable, optional
        Closed-form compute-optimal size on the line ``C = k N D``:
        ``log_n_opt(params, log_c_over_k) -> log N*``, elementwise over arrays (NumPy or JAX).
        None where no closed form exists (callers then search numerically).
        For laws with more covariates than ``N`` and ``D`` it is the optimum where the others
        do not bind (for example data that is not repeated).
    optimal_exponent : callable, optional
        ``optimal_exponent(params) -> a`` with ``N* ~ C^a`` along the compute-optimal frontier.
    """

    name: str
    fn: Callable[[Mapping[str, jax.Array], Mapping[str, jax.Array]], jax.Array]
    params: tuple[ParamSpec, ...]
    covariates: tuple[str, ...]
    formula: str
    reference: str
    priors: _priors.PriorSet
    target: str = "loss"
    log_n_opt: Callable[[Mapping[str, Any], Any], Any] | None = None
    optimal_exponent: Callable[[Mapping[str, Any]], Any] | None = None

    @property
    def allocates_compute(self) -> bool:
        """True when the law reads model size ``N`` and tokens ``D`` (compute ``C = k N D``)."""
        return {"N", "D"} <= set(self.covariates)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def __call__(self, params: Mapping[str, jax.Array], x: Mapping[str, jax.Array]) -> jax.Array:
        return self.fn(params, x)

    def log_predict(self, params: Mapping[str, Any], covariates: Mapping[str, Any]) -> jax.Array:
        """Log target at covariates given in natural units (not logs)."""
        x = {
            k: jnp.log(jnp.asarray(covariates[k], dtype=jnp.result_type(float)))
            for k in self.covariates
        }
        return self.fn({k: jnp.asarray(v) for k, v in params.items()}, x)

    def predict(self, params: Mapping[str, Any], covariates: Mapping[str, Any]) -> jax.Array:
        """Target (loss or steps) at covariates in natural units."""
        return jnp.exp(self.log_predict(params, covariates))


# --------------------------------------------------------------------------- law functions


def chinchilla(params: Mapping[str, jax.Array], x: Mapping[str, jax.Array]) -> jax.Array:
    r"""Chinchilla law, log loss: :math:`\log(E + A N^{-\alpha} + B D^{-\beta})`.

    Notes
    -----
    Computed as ``logaddexp(log E, logaddexp(log A - alpha log N, log B - beta log D))``.

    References
    ----------
    Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", arXiv:2203.15556.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> p = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    >>> x = {"N": jnp.log(70e9), "D": jnp.log(1.4e12)}
    >>> round(float(jnp.exp(chinchilla(p, x))), 2)
    1.94
    """
    n_term = jnp.log(params["A"]) - params["alpha"] * x["N"]
    d_term = jnp.log(params["B"]) - params["beta"] * x["D"]
    return jnp.logaddexp(jnp.log(params["E"]), jnp.logaddexp(n_term, d_term))


def kaplan(params: Mapping[str, jax.Array], x: Mapping[str, jax.Array]) -> jax.Array:
    r"""Kaplan law, log loss: :math:`\alpha_D \log[(N_c/N)^{\alpha_N/\alpha_D} + D_c/D]`.

    References
    ----------
    Kaplan et al. 2020, "Scaling Laws for Neural Language Models", arXiv:2001.08361, eq. 1.5.
    """
    ratio = params["alpha_N"] / params["alpha_D"]
    n_term = ratio * (jnp.log(params["N_c"]) - x["N"])
    d_term = jnp.log(params["D_c"]) - x["D"]
    return params["alpha_D"] * jnp.logaddexp(n_term, d_term)


def _power_law_on(covariate: str) -> Callable:
    def power_law_fn(params: Mapping[str, jax.Array], x: Mapping[str, jax.Array]) -> jax.Array:
        term = jnp.log(params["A"]) - params["alpha"] * x[covariate]
        return jnp.logaddexp(jnp.log(params["E"]), term)

    power_law_fn.__name__ = f"power_law_{covariate}"
    return power_law_fn


power_law = _power_law_on("C")
power_law.__doc__ = r"""Power law with offset over one covariate: :math:`\log(E + A x^{-\alpha})`.

The registered ``power_law`` uses compute ``C``; ``get_law("power_law:N")`` (or ``D``,
``steps``) gives the same form over another column.

References
----------
Kaplan et al. 2020 (arXiv:2001.08361); Henighan et al. 2020 ("power law plus constant").
"""


def _broken_power_law_on(covariate: str) -> Callable:
    def broken_fn(params: Mapping[str, jax.Array], x: Mapping[str, jax.Array]) -> jax.Array:
        lx = x[covariate]
        f = params["f"]
        bend = params["c"] * f * jax.nn.softplus((lx - jnp.log(params["d"])) / f)
        term = jnp.log(params["A"]) - params["alpha"] * lx - bend
        return jnp.logaddexp(jnp.log(params["E"]), term)

    broken_fn.__name__ = f"broken_power_law_{covariate}"
    return broken_fn


broken_power_law = _broken_power_law_on("C")
broken_power_law.__doc__ = r"""Broken power law with one break, log loss.

:math:`\log(E + A x^{-\alpha} (1 + (x/d)^{1/f})^{-c f})`: slope ``alpha`` below the break ``d``,
``alpha + c`` above it, ``f`` the sharpness. ``log(1 + (x/d)^{1/f})`` is a softplus.

References
----------
Caballero et al. 2022, "Broken Neural Scaling Laws", arXiv:2210.14891.
"""


def data_constrained(params: Mapping[str, jax.Array], x: Mapping[str, jax.Array]) -> jax.Array:
    r"""Data-constrained Chinchilla law with repeated tokens, log loss.

    Notes
    -----
    With ``U_D = min(U, D)`` unique tokens and ``R_D = D / U_D - 1`` repetitions, the effective
    data is :math:`D' = U_D + U_D R^*_D (1 - e^{-R_D / R^*_D})`. Parameters beyond the
    compute-optimal size for ``U_D`` tokens decay likewise with ``R^*_N``:
    ``U_N = min(N, N_opt(U_D))``, :math:`N' = U_N + U_N R^*_N (1 - e^{-R_N / R^*_N})`.
    Then :math:`L = E + A N'^{-\alpha} + B D'^{-\beta}`.

    References
    ----------
    Muennighoff et al. 2023, "Scaling Data-Constrained Language Models", arXiv:2305.16264.
    """
    alpha, beta = params["alpha"], params["beta"]
    log_a, log_b = jnp.log(params["A"]), jnp.log(params["B"])
    log_ud = jnp.minimum(x["U"], x["D"])
    r_d = jnp.expm1(x["D"] - log_ud)
    log_d_eff = log_ud + jnp.log1p(params["R_D"] * -jnp.expm1(-r_d / params["R_D"]))
    # compute-optimal parameter count for U_D tokens under the same law
    log_n_opt = (jnp.log(alpha) + log_a - jnp.log(beta) - log_b) / alpha + (beta / alpha) * log_ud
    log_un = jnp.minimum(x["N"], log_n_opt)
    r_n = jnp.expm1(x["N"] - log_un)
    log_n_eff = log_un + jnp.log1p(params["R_N"] * -jnp.expm1(-r_n / params["R_N"]))
    n_term = log_a - alpha * log_n_eff
    d_term = log_b - beta * log_d_eff
    return jnp.logaddexp(jnp.log(params["E"]), jnp.logaddexp(n_term, d_term))


def batch_steps(params: Mapping[str, jax.Array], x: Mapping[str, jax.Array]) -> jax.Array:
    r"""Steps to a target loss versus batch size, log steps: :math:`\log S_{min} (1 + B_{noise}/B)`.

    References
    ----------
    McCandlish et al. 2018, "An Empirical Model of Large-Batch Training", arXiv:1812.06162.
    """
    return jnp.log(params["S_min"]) + jax.nn.softplus(jnp.log(params["B_noise"]) - x["B"])


# --------------------------------------------------------------------------- registry

LAWS: dict[str, LawSpec] = {}


def _check_spec(spec: LawSpec) -> None:
    if not spec.name or not isinstance(spec.name, str):
        raise ValueError(f"law name must be a non-empty string; got {spec.name!r}")
    if not callable(spec.fn):
        raise TypeError(f"law {spec.name!r}: fn must be callable; got {type(spec.fn).__name__}")
    names = [p.name for p in spec.params]
    if not names:
        raise ValueError(f"law {spec.name!r} has no parameters")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"law {spec.name!r}: duplicated parameter names {dup}")
    for p in spec.params:
        if p.constraint not in CONSTRAINTS:
            raise ValueError(
                f"law {spec.name!r}: parameter {p.name!r} has constraint {p.constraint!r}; "
                f"expected one of {', '.join(CONSTRAINTS)}"
            )
        if p.centre is not None:
            cov, exponent = p.centre
            if cov not in spec.covariates:
                raise ValueError(
                    f"law {spec.name!r}: parameter {p.name!r} is centred on covariate {cov!r}, "
                    f"which is not among the law's covariates {list(spec.covariates)}"
                )
            if exponent is not None and exponent not in names[: names.index(p.name)]:
                raise ValueError(
                    f"law {spec.name!r}: parameter {p.name!r} is centred with exponent "
                    f"{exponent!r}, which must be a parameter listed before it"
                )
    if not spec.covariates:
        raise ValueError(f"law {spec.name!r} has no covariates")
    prior_names = set(spec.priors.params)
    missing = [n for n in names if n not in prior_names]
    extra = sorted(prior_names - set(names))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"no prior for {missing}")
        if extra:
            parts.append(f"priors for unknown parameters {extra}")
        raise ValueError(
            f"law {spec.name!r}: parameter names and priors disagree: {'; '.join(parts)}"
        )
    for p in spec.params:
        spec.priors.params[p.name].check_support(p.constraint, where=f"law {spec.name!r}")


def register_law(spec: LawSpec, *, overwrite: bool = False) -> LawSpec:
    """Add a law to :data:`LAWS` after checking it.

    Parameters
    ----------
    spec : LawSpec
        The law. Its ``priors`` must name exactly its parameters, with supports that match
        each parameter's constraint.
    overwrite : bool, default False
        Replace a law of the same name instead of refusing.

    Returns
    -------
    LawSpec
        The registered spec.

    Raises
    ------
    ValueError
        On a duplicate name, a prior/parameter mismatch (the message lists the names), or a
        bad constraint or centring hint.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from bayes_scaling.priors import PriorSet
    >>> spec = LawSpec(
    ...     name="pure_power", fn=lambda p, x: jnp.log(p["A"]) - p["alpha"] * x["C"],
    ...     params=(ParamSpec("alpha"), ParamSpec("A", centre=("C", "alpha"))),
    ...     covariates=("C",), formula="L = A C^-alpha", reference="user",
    ...     priors=PriorSet.from_dict({"alpha": {"dist": "lognormal", "loc": -1.0, "scale": 0.7},
    ...                                "A": {"dist": "lognormal", "loc": 3.0, "scale": 3.0}}))
    >>> register_law(spec).name
    'pure_power'
    >>> _ = LAWS.pop("pure_power")
    """
    _check_spec(spec)
    if spec.name in LAWS and not overwrite:
        raise ValueError(
            f"a law named {spec.name!r} is already registered; pass overwrite=True to replace it"
        )
    LAWS[spec.name] = spec
    return spec


_CHINCHILLA_PARAMS = (
    ParamSpec("alpha", description="exponent of parameters N"),
    ParamSpec("beta", description="exponent of tokens D"),
    ParamSpec("E", description="irreducible loss"),
    ParamSpec("A", description="amplitude of the N term", centre=("N", "alpha")),
    ParamSpec("B", description="amplitude of the D term", centre=("D", "beta")),
)


def _builtin_specs() -> tuple[LawSpec, ...]:
    chinchilla_spec, kaplan_spec, constrained_spec = _allocation_specs()
    return (
        chinchilla_spec,
        kaplan_spec,
        _power_law_spec("C"),
        _broken_power_law_spec("C"),
        constrained_spec,
        _batch_spec(),
    )


def _allocation_specs() -> tuple[LawSpec, ...]:
    """The laws over model size and tokens, with their closed-form optima."""
    load = _priors.load_prior_set
    return (
        LawSpec(
            name="chinchilla",
            fn=chinchilla,
            params=_CHINCHILLA_PARAMS,
            covariates=("N", "D"),
            formula="L = E + A*N^-alpha + B*D^-beta",
            reference="Hoffmann et al. 2022, arXiv:2203.15556 (approach 3)",
            priors=load("chinchilla").for_law("chinchilla"),
            log_n_opt=chinchilla_log_n_opt,
            optimal_exponent=chinchilla_optimal_exponent,
        ),
        LawSpec(
            name="kaplan",
            fn=kaplan,
            params=(
                ParamSpec("alpha_N", description="exponent of parameters N"),
                ParamSpec("alpha_D", description="exponent of tokens D"),
                ParamSpec("N_c", description="parameter scale", centre=("N", None)),
                ParamSpec("D_c", description="token scale", centre=("D", None)),
            ),
            covariates=("N", "D"),
            formula="L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D",
            reference="Kaplan et al. 2020, arXiv:2001.08361 (eq. 1.5)",
            priors=load("kaplan").for_law("kaplan"),
            log_n_opt=kaplan_log_n_opt,
            optimal_exponent=kaplan_optimal_exponent,
        ),
        LawSpec(
            name="data_constrained",
            fn=data_constrained,
            params=(
                *_CHINCHILLA_PARAMS,
                ParamSpec(
                    "R_D",
                    description="repetitions at which repeated tokens lose 1-1/e of their value",
                ),
                ParamSpec("R_N", description="decay constant of excess parameters"),
            ),
            covariates=("N", "D", "U"),
            formula=(
                "L = E + A*N'^-alpha + B*D'^-beta, D' = U + U*R_D*(1-exp(-(D/U-1)/R_D)), "
                "N' likewise"
            ),
            reference="Muennighoff et al. 2023, arXiv:2305.16264",
            priors=load("data_constrained").for_law("data_constrained"),
            log_n_opt=chinchilla_log_n_opt,  # exact where the data is not repeated (D <= U)
            optimal_exponent=chinchilla_optimal_exponent,
        ),
    )


def _batch_spec() -> LawSpec:
    return LawSpec(
        name="batch_steps",
        fn=batch_steps,
        params=(
            ParamSpec("S_min", description="steps needed at infinite batch size"),
            ParamSpec(
                "B_noise", description="noise scale (critical batch size)", centre=("B", None)
            ),
        ),
        covariates=("B",),
        formula="S = S_min*(1 + B_noise/B)",
        reference="McCandlish et al. 2018, arXiv:1812.06162",
        priors=_priors.load_prior_set("batch_steps").for_law("batch_steps"),
        target="steps",
    )


ONE_COVARIATE = ("C", "N", "D", "steps")


@functools.cache
def _power_law_spec(covariate: str) -> LawSpec:
    name = "power_law" if covariate == "C" else f"power_law:{covariate}"
    return LawSpec(
        name=name,
        fn=power_law if covariate == "C" else _power_law_on(covariate),
        params=(
            ParamSpec("alpha", description=f"exponent of {covariate}"),
            ParamSpec("E", description="irreducible loss"),
            ParamSpec("A", description="amplitude", centre=(covariate, "alpha")),
        ),
        covariates=(covariate,),
        formula=f"L = E + A*{covariate}^-alpha",
        reference="Kaplan et al. 2020, arXiv:2001.08361; Henighan et al. 2020",
        priors=_priors.load_prior_set("power_law").for_law(name),
    )


@functools.cache
def _broken_power_law_spec(covariate: str) -> LawSpec:
    name = "broken_power_law" if covariate == "C" else f"broken_power_law:{covariate}"
    return LawSpec(
        name=name,
        fn=broken_power_law if covariate == "C" else _broken_power_law_on(covariate),
        params=(
            ParamSpec("alpha", description=f"exponent of {covariate} below the break"),
            ParamSpec("c", constraint="real", description="change of exponent across the break"),
            ParamSpec("f", description="sharpness of the break (smaller is sharper)"),
            ParamSpec("E", description="irreducible loss"),
            ParamSpec("A", description="amplitude", centre=(covariate, "alpha")),
            ParamSpec(
                "d", description=f"location of the break in {covariate}", centre=(covariate, None)
            ),
        ),
        covariates=(covariate,),
        formula=f"L = E + A*{covariate}^-alpha*(1 + ({covariate}/d)^(1/f))^(-c*f)",
        reference="Caballero et al. 2022, arXiv:2210.14891",
        priors=_priors.load_prior_set("broken_power_law").for_law(name),
    )


def get_law(law: str | LawSpec) -> LawSpec:
    """Look a law up by name (or pass a spec through).

    ``"power_law:N"`` and ``"broken_power_law:D"`` select the one-covariate laws over another
    column (``C``, ``N``, ``D`` or ``steps``).

    Raises
    ------
    KeyError
        For an unknown name, listing the available ones.
    """
    if isinstance(law, LawSpec):
        return law
    if not isinstance(law, str):
        raise TypeError(f"law must be a name or a LawSpec; got {type(law).__name__}")
    if law in LAWS:
        return LAWS[law]
    base, _, covariate = law.partition(":")
    if base in ("power_law", "broken_power_law") and covariate:
        if covariate not in ONE_COVARIATE:
            raise KeyError(
                f"law {law!r}: covariate {covariate!r} is not one of {', '.join(ONE_COVARIATE)}"
            )
        return (
            _power_law_spec(covariate) if base == "power_law" else _broken_power_law_spec(covariate)
        )
    available = ", ".join(sorted(LAWS))
    raise KeyError(f"unknown law {law!r}; available: {available} (and power_law:N etc.)")


for _spec in _builtin_specs():
    register_law(_spec)
del _spec


# --------------------------------------------------------------------------- loss-to-loss

LOSS_TO_LOSS_FLOOR = 1e-3  # nats: the smooth floor of L_x - E_x in loss_to_loss


def loss_to_loss(params: Mapping[str, jax.Array], x: Mapping[str, jax.Array]) -> jax.Array:
    r"""Loss-to-loss law, log loss on dataset y: :math:`\log(K (L_x - E_x)^\kappa + E_y)`.

    The covariate ``loss_x`` is the loss of the same model on dataset x; the law predicts its
    loss ``L_y`` on dataset y (the ``loss`` column).

    Notes
    -----
    Computed as ``logaddexp(log E_y, log K + kappa * log gap)`` with the reducible loss
    ``gap = L_x - E_x`` floored smoothly, ``s * softplus((L_x - E_x) / s)`` with
    ``s = 1e-3`` nats: where ``E_x`` is below every observed ``L_x`` by more than a few ``s``
    (any sensible fit) this is ``L_x - E_x`` to float precision, and a draw with ``E_x`` above
    an observed ``L_x`` gives a poor fit instead of a NaN that would stop the sampler.

    From loss pairs alone ``E_x`` and ``E_y`` are weakly identified (at ``kappa = 1`` only
    ``E_y - K E_x`` is): as in the paper, take them from each dataset's own scaling fit, e.g.
    ``priors=bayes_scaling.compare.loss_to_loss_priors(fit_x, fit_y)``.

    References
    ----------
    Brandfonbrener, Anand, Vyas, Malach, Kakade 2024, "Loss-to-Loss Prediction: Scaling Laws for
    All Datasets", arXiv:2411.12925.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> p = dict(E_x=1.5, E_y=2.0, K=1.2, kappa=0.9)
    >>> round(float(jnp.exp(loss_to_loss(p, {"loss_x": jnp.log(3.0)}))), 2)  # 1.2 * 1.5**0.9 + 2
    3.73
    """
    s = LOSS_TO_LOSS_FLOOR
    z = (jnp.exp(x["loss_x"]) - params["E_x"]) / s
    # log softplus(z), equal to z far below zero (where softplus underflows in float32)
    log_softplus = jnp.where(z > -15.0, jnp.log(jax.nn.softplus(jnp.maximum(z, -15.0))), z)
    log_gap = jnp.log(s) + log_softplus
    term = jnp.log(params["K"]) + params["kappa"] * log_gap
    return jnp.logaddexp(jnp.log(params["E_y"]), term)


register_law(
    LawSpec(
        name="loss_to_loss",
        fn=loss_to_loss,
        params=(
            ParamSpec("E_x", description="irreducible loss on dataset x (the covariate loss_x)"),
            ParamSpec("kappa", description="exponent of the reducible loss on x"),
            ParamSpec("K", description="multiplier of the reducible loss"),
            ParamSpec("E_y", description="irreducible loss on dataset y (the target)"),
        ),
        covariates=("loss_x",),
        formula="L_y = K*(L_x - E_x)^kappa + E_y",
        reference="Brandfonbrener et al. 2024, arXiv:2411.12925",
        priors=_priors.load_prior_set("loss_to_loss").for_law("loss_to_loss"),
    )
)
