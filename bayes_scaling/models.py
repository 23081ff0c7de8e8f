"""numpyro model builders: likelihood on the log target, per-parameter pooling across groups.

The model for a law ``f`` with parameters ``theta`` is

    log y_i ~ StudentT(nu, f(theta_{g(i)}, log x_i), sigma)      (or Normal(mu, sigma))

Each parameter is, across the groups of a ``group`` column, either *shared* (one value),
*pooled* (per-group values around a learned population location with a learned spread,
non-centred) or *independent* (per-group values, each with the prior).

Amplitude and scale parameters flagged with ``ParamSpec.centre`` are sampled as their log
value at a reference point of the data (the mean log covariate), which removes most of the
correlation with their exponent; the public parameter is recorded as a deterministic site.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import jax.numpy as jnp

from bayes_scaling.laws import LawSpec
from bayes_scaling.priors import PriorSet

__all__ = ["LIKELIHOODS", "POOLING_MODES", "ModelSpec", "build_model", "resolve_pooling"]

POOLING_MODES = ("shared", "pooled", "independent")
LIKELIHOODS = ("student_t", "normal")


def resolve_pooling(law: LawSpec, pooling, grouped: bool) -> dict[str, str]:
    """Per-parameter pooling: a mode for all, a mapping for some (the rest pooled), or shared
    without groups."""
    if not grouped:
        if pooling not in (None, "shared") and not (
            isinstance(pooling, Mapping) and set(pooling.values()) <= {"shared"}
        ):
            raise ValueError(
                "pooling needs a group column (group=...); without groups every parameter is shared"
            )
        return dict.fromkeys(law.param_names, "shared")
    if pooling is None:
        return dict.fromkeys(law.param_names, "pooled")
    if isinstance(pooling, str):
        if pooling not in POOLING_MODES:
            raise ValueError(
                f"unknown pooling {pooling!r}; expected one of {', '.join(POOLING_MODES)}"
            )
        return dict.fromkeys(law.param_names, pooling)
    if isinstance(pooling, Mapping):
        unknown = sorted(set(pooling) - set(law.param_names))
        if unknown:
            raise ValueError(
                f"pooling names {unknown}, which law {law.name!r} does not have; its parameters: "
                f"{list(law.param_names)}"
            )
        for k, v in pooling.items():
            if v not in POOLING_MODES:
                raise ValueError(
                    f"pooling for {k!r} is {v!r}; expected one of {', '.join(POOLING_MODES)}"
                )
        return {p: pooling.get(p, "pooled") for p in law.param_names}
    raise TypeError(f"pooling must be None, a mode name or a mapping; got {type(pooling).__name__}")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything static about a model: law, priors, likelihood, pooling, groups, reference point.

    It is hashable, so a compiled sampler can be cached per spec and data shape.
    """

    law: LawSpec
    priors: PriorSet
    likelihood: str
    pooling: tuple[tuple[str, str], ...]
    num_groups: int
    reference: tuple[tuple[str, float], ...]

    def _key(self) -> tuple:
        return (
            self.law.name,
            self.law.fn,
            self.priors.to_json(),
            self.likelihood,
            self.pooling,
            self.num_groups,
            self.reference,
        )

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other) -> bool:
        return isinstance(other, ModelSpec) and self._key() == other._key()

    @property
    def pooling_map(self) -> dict[str, str]:
        return dict(self.pooling)

    @property
    def reference_map(self) -> dict[str, float]:
        return dict(self.reference)

    def per_group(self, name: str) -> bool:
        return self.num_groups > 0 and self.pooling_map[name] != "shared"

    @property
    def structure(self) -> tuple:
        """The spec without its reference point: what a compiled sampler depends on.

        The reference point is passed to the model as an array argument, so fits of
        different data with the same law, priors, likelihood, pooling and group count share
        one compiled program.
        """
        return (
            self.law.name,
            self.law.fn,
            self.priors.to_json(),
            self.likelihood,
            self.pooling,
            self.num_groups,
        )


def _log_prior_of(prior):
    """The prior pushed to the log scale (for positive parameters)."""
    import numpyro.distributions as dist
    from numpyro.distributions import transforms as T

    return dist.TransformedDistribution(prior, T.ExpTransform().inv)


def _shift(p, values: Mapping[str, jnp.ndarray], reference: Mapping[str, float]):
    cov, exponent = p.centre
    ref = reference[cov]
    return ref if exponent is None else values[exponent] * ref


def _population_value(spec: ModelSpec, name: str, values, pop_values):
    """A scalar stand-in for a possibly per-group parameter, used to centre shared amplitudes."""
    if name in pop_values:
        return pop_values[name]
    v = values[name]
    return jnp.mean(v) if jnp.ndim(v) else v


def build_model(spec: ModelSpec):
    """Return ``model(x, y=None, group_index=None, mask=None, reference=None)`` for numpyro.

    ``x`` maps covariate names to log covariates (shape ``(n,)``), ``y`` is the log target,
    ``group_index`` integer group codes, ``mask`` a boolean array of rows that count (padding),
    ``reference`` maps covariate names to the log reference point (scalars; default the
    spec's). Passing the reference as an argument keeps it out of the compiled program.

    A grouped model called with ``group_index=None`` reads its rows in the engine's block
    layout (:func:`bayes_scaling.engine.settings.group_blocks`): ``n = G * m`` rows, group
    ``g``'s in rows ``g*m`` to ``g*m + m - 1``: each group's values are repeated over its block
    by a broadcast, with no gather (whose gradient, a scatter into the groups, was most of a
    grouped fit's time per step).
    """
    law = spec.law
    pooling = spec.pooling_map
    default_reference = spec.reference_map
    G = spec.num_groups
    samplers = {"shared": _shared, "independent": _independent, "pooled": _pooled}

    def model(x, y=None, group_index=None, mask=None, reference=None):
        reference = default_reference if reference is None else reference
        values: dict[str, jnp.ndarray] = {}
        pop_values: dict[str, jnp.ndarray] = {}  # population medians of per-group params
        for p in law.params:
            mode = pooling[p.name] if G else "shared"
            values[p.name] = samplers[mode](spec, p, values, pop_values, reference)
        if G and group_index is None:
            # the engine's grouped layout: the rows in G blocks of equal length, group g's in
            # block g. The law still runs on flat rows: on (G, m) arrays the sampler ran
            # slower on this 2-core CPU with its chains on four devices, for reasons not pinned
            # down (six groups of 90 runs: 19.4 s against 13.3 s with the gather; 10.3 s flat)
            m = next(iter(x.values())).shape[0] // G
            per_row = {
                k: (
                    jnp.broadcast_to(v[:, None], (G, m)).reshape(-1)
                    if pooling[k] != "shared"
                    else v
                )
                for k, v in values.items()
            }
            mu = law.fn(per_row, x)
        else:
            pointwise = {
                k: (v[group_index] if (G and pooling[k] != "shared") else v)
                for k, v in values.items()
            }
            mu = law.fn(pointwise, x)
        _likelihood(spec, mu, y, mask)

    model.spec = spec  # type: ignore[attr-defined]
    return model


# numpyro is imported inside these functions, not at module level: a CLI fit that runs a saved
# program (bayes_scaling.engine) never builds a model and so never pays for importing numpyro.


def _population_shift(spec: ModelSpec, p, values, pop_values, reference):
    scalars = {k: _population_value(spec, k, values, pop_values) for k in values}
    return _shift(p, scalars, reference)


def _shared(spec: ModelSpec, p, values, pop_values, reference):
    """One value for all groups; an amplitude is sampled at the data's reference point."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import transforms as T

    prior = spec.priors.params[p.name].to_numpyro()
    if p.centre is None:
        return numpyro.sample(p.name, prior)
    shift = _population_shift(spec, p, values, pop_values, reference)
    shifted = dist.TransformedDistribution(_log_prior_of(prior), T.AffineTransform(-shift, 1.0))
    u = numpyro.sample(f"{p.name}_ref", shifted)
    return numpyro.deterministic(p.name, jnp.exp(u + shift))


def _independent(spec: ModelSpec, p, values, pop_values, reference):
    """One value per group, each with the prior."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import transforms as T

    G = spec.num_groups
    prior = spec.priors.params[p.name].to_numpyro()
    with numpyro.plate("group", G):
        if p.centre is None:
            return numpyro.sample(p.name, prior)
        shift = jnp.broadcast_to(_shift(p, values, reference), (G,))
        shifted = dist.TransformedDistribution(_log_prior_of(prior), T.AffineTransform(-shift, 1.0))
        u = numpyro.sample(f"{p.name}_ref", shifted)
        return numpyro.deterministic(p.name, jnp.exp(u + shift))


def _pooled(spec: ModelSpec, p, values, pop_values, reference):
    """Per-group values around a learned population location and spread (non-centred)."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import transforms as T

    G = spec.num_groups
    prior = spec.priors.params[p.name].to_numpyro()
    positive = p.constraint == "positive"
    base = _log_prior_of(prior) if positive else prior
    if p.centre is not None:
        pop_shift = _population_shift(spec, p, values, pop_values, reference)
        base = dist.TransformedDistribution(base, T.AffineTransform(-pop_shift, 1.0))
    loc = numpyro.sample(f"{p.name}_pop_loc", base)
    sd = numpyro.sample(f"{p.name}_pop_sd", dist.HalfNormal(spec.priors.pop_sd(p.name)))
    with numpyro.plate("group", G):
        z = numpyro.sample(f"{p.name}_z", dist.Normal(0.0, 1.0))
    u = loc + sd * z
    if p.centre is not None:
        shift = jnp.broadcast_to(_shift(p, values, reference), (G,))
        value = jnp.exp(u + shift)
        pop_values[p.name] = jnp.exp(loc + pop_shift)
    else:
        value = jnp.exp(u) if positive else u
        pop_values[p.name] = jnp.exp(loc) if positive else loc
    return numpyro.deterministic(p.name, value)


@functools.cache
def _polar_student_t():
    """numpyro's Student-t whose draws (the prior and posterior predictive) come from Bailey's
    polar method: ``t = sqrt(nu (u ** (-2 / nu) - 1)) cos(2 pi v)`` for independent uniforms
    ``u`` and ``v`` is Student-t with ``nu`` degrees of freedom, the t analogue of Box-Muller.
    numpyro draws a gamma variate per point by rejection; on a CPU the 500 x 576 prior
    predictive draws of six groups' runs took about 80 ms that way and 3 ms this way. Its
    density is numpyro's. Draws beyond the largest float are set to it."""
    import jax
    import numpyro.distributions as dist

    class PolarStudentT(dist.StudentT):
        def sample(self, key, sample_shape=()):
            shape = sample_shape + self.batch_shape
            k_radius, k_angle = jax.random.split(key)
            dtype = jnp.result_type(self.loc, float)
            tiny, largest = jnp.finfo(dtype).tiny, jnp.finfo(dtype).max
            u = jax.random.uniform(k_radius, shape, dtype, minval=tiny)
            v = jax.random.uniform(k_angle, shape, dtype)
            df = jnp.broadcast_to(self.df, shape)
            radius2 = jnp.minimum(df * jnp.expm1(-2.0 / df * jnp.log(u)), largest)
            return self.loc + self.scale * jnp.sqrt(radius2) * jnp.cos(2 * jnp.pi * v)

    return PolarStudentT


def _likelihood(spec: ModelSpec, mu, y, mask) -> None:
    """Noise priors and the likelihood of the log target (Student-t or normal), masked rows out."""
    import numpyro
    import numpyro.distributions as dist

    priors = spec.priors
    sigma = numpyro.sample("sigma", priors.noise["sigma"].to_numpyro())
    if spec.likelihood == "student_t":
        nu_prior = priors.noise["nu"]
        if nu_prior.dist == "fixed":
            nu = jnp.asarray(nu_prior.kwargs["value"])
        else:
            nu = numpyro.sample("nu", nu_prior.to_numpyro())
        obs_dist = _polar_student_t()(nu, mu, sigma)
    else:
        obs_dist = dist.Normal(mu, sigma)
    with (
        numpyro.plate("point", mu.shape[0]),
        numpyro.handlers.mask(mask=True if mask is None else mask),
    ):
        numpyro.sample(f"log_{spec.law.target}", obs_dist, obs=y)
