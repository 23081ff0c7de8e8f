"""The fitting program: potential, Laplace whitening, NUTS (or Laplace draws) and outputs."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from bayes_scaling.engine.centring import (
    _location_ties,
    _MeanCentredOffsets,
    _PartialCentring,
    _pooled_blocks,
    _ScaledOffsets,
    offset_information,
    offset_tie_figure,
    offset_tie_figures,
)
from bayes_scaling.engine.chains import _nuts
from bayes_scaling.engine.settings import (
    CENTRING_MIN_GROUPS,
    MEAN_CENTRING_MAX_GROUPS,
    MEAN_CENTRING_MIN_GROUPS,
    METHODS,
    PILOT_CONDITION_MIN_GROUPS,
    TRACE_COUNTS,
    SamplerSettings,
)
from bayes_scaling.engine.whitening import (
    diagonal_whitening,
    location_whitening,
    matvec,
    scaled,
    unscaled,
)
from bayes_scaling.laplace import find_map, whitening
from bayes_scaling.models import ModelSpec, build_model


def _counted(spec: ModelSpec):
    inner = build_model(spec)
    name = spec.law.name

    def model(*args, **kwargs):
        TRACE_COUNTS[name] = TRACE_COUNTS.get(name, 0) + 1
        return inner(*args, **kwargs)

    model.spec = spec  # type: ignore[attr-defined]
    return model


def _structure(model, args, rng_key):
    """numpyro's view of the model at ``args``: its ``initialize_model`` info and the unraveller
    of the flat unconstrained vector. Only shapes matter: the potential and the constraining map
    are rebuilt for other data of the same shapes with :func:`_potential` and :func:`_outputs`."""
    from numpyro.infer import init_to_uniform
    from numpyro.infer.util import initialize_model

    # the model's own initial point is unused (and compiled away)
    info = initialize_model(
        rng_key, model, model_args=args, init_strategy=init_to_uniform, dynamic_args=True
    )
    _, unravel = ravel_pytree(info.param_info.z)
    return info, unravel


def _potential(info, unravel, args):
    bound = info.potential_fn(*args)
    return lambda u: bound(unravel(u))


def _whitened_start(model, info, potential, rng_key, args, prior_samples: int):
    """Prior draws, the mode and the whitening ``u = mode + scale @ z`` for one data set.

    The mode search starts at the median of the prior draws on the unconstrained scale (as
    numpyro's ``init_to_median``); where it fails, the start and an identity scale are used.
    """
    from numpyro.distributions.transforms import biject_to
    from numpyro.infer import Predictive

    x, _, group_index, mask, reference = args
    prior = Predictive(model, num_samples=max(prior_samples, 32), parallel=True)(
        rng_key, x, None, group_index, mask, reference
    )
    u0, _ = ravel_pytree(
        {
            name: jnp.median(
                biject_to(info.model_trace[name]["fn"].support).inv(prior[name]), axis=0
            )
            for name in info.param_info.z
        }
    )
    found = find_map(potential, u0)
    usable = jnp.all(jnp.isfinite(found.u)) & jnp.isfinite(found.potential)
    mode = jnp.where(usable, found.u, u0)
    scale = whitening(jnp.where(usable, found.hessian, jnp.eye(u0.shape[0], dtype=u0.dtype)))
    found_map = {
        "u": mode,
        "potential": found.potential,
        "iterations": found.iterations,
        "converged": found.converged,
        "hessian": jnp.where(usable, found.hessian, 0.0),
    }
    return mode, scale, found_map, prior


def _outputs(model, info, unravel, args, flat, target_site: str, C: int, S: int):
    """Constrained draws (and deterministic sites) and the pointwise log likelihood (C, S, ...)."""
    from numpyro.infer.util import log_likelihood as _numpyro_log_likelihood

    constrain = info.postprocess_fn(*args)
    samples = jax.vmap(lambda u: constrain(unravel(u)))(flat)
    log_lik = _numpyro_log_likelihood(model, samples, *args, parallel=True)[target_site]
    return {k: v.reshape((C, S, *v.shape[1:])) for k, v in samples.items()}, log_lik.reshape(
        C, S, -1
    )


def _independent_draws(potential, mode, scale, rng_key, C: int, S: int):
    """``method="laplace"``: independent draws of ``z ~ N(0, I)`` and sampler-shaped statistics."""
    d = mode.shape[0]
    dtype = mode.dtype
    z = jax.random.normal(rng_key, (C, S, d), dtype=dtype)
    pe = jax.vmap(lambda zz: potential(mode + scale @ zz))(z.reshape(C * S, d)).reshape(C, S)
    stats = {
        "diverging": jnp.zeros((C, S), bool),
        "num_steps": jnp.zeros((C, S), jnp.int32),
        "energy": pe + 0.5 * jnp.sum(z**2, -1),
        "potential_energy": pe,
        "accept_prob": jnp.ones((C, S), dtype),
        "step_size": jnp.zeros((C,), dtype),
    }
    return z, stats


def _partially_centred(spec: ModelSpec, settings: SamplerSettings, method: str) -> bool:
    return method == "nuts" and settings.partial_centring and spec.num_groups >= CENTRING_MIN_GROUPS


def _scales_offsets(spec: ModelSpec, settings: SamplerSettings, method: str) -> bool:
    return (
        method == "nuts"
        and bool(spec.num_groups)
        and settings.offset_scaling > 0
        and not _partially_centred(spec, settings, method)
    )


def _centring(
    spec: ModelSpec,
    settings: SamplerSettings,
    method: str,
    info,
    hessian,
    information=None,
    power=None,
    centred=None,
):
    """The sampler's coordinates: partially centred, with the offsets rescaled (``information``
    from :func:`offset_information`, ``power`` from :func:`offset_power`, else
    ``settings.offset_scaling``) and the pooled parameters marked in ``centred`` (from
    :func:`mean_centred`) centred about the groups' mean, or the model's own (identity
    without blocks)."""
    if _partially_centred(spec, settings, method):
        return _PartialCentring(_pooled_blocks(spec, info), hessian)
    if _scales_offsets(spec, settings, method) and information is not None:
        blocks = _pooled_blocks(spec, info)
        if blocks:
            power = settings.offset_scaling if power is None else power
            if centred is not None:
                return _MeanCentredOffsets(blocks, information, power, centred)
            return _ScaledOffsets(blocks, information, power)
    return _PartialCentring([], hessian)


def chooses_offset_power(settings: SamplerSettings) -> bool:
    """Whether a grouped run with rescaled offsets chooses their power at the mode
    (``SamplerSettings.tied_offsets_above``): only where it may re-whiten half-way."""
    return (
        settings.pilot == "auto"
        and settings.tied_offsets_above is not None
        and settings.static_length() is not None
        and float(settings.rewhitened_offset_scaling) != float(settings.offset_scaling)
    )


def offset_power(settings: SamplerSettings, blocks, information, mode):
    """The offsets' power for the whole run (a traced scalar): ``rewhitened_offset_scaling``
    where :func:`bayes_scaling.engine.centring.offset_tie_figure` exceeds
    ``settings.tied_offsets_above``, else ``offset_scaling``."""
    threshold = settings.tied_offsets_above
    assert threshold is not None  # chooses_offset_power(settings)
    tied = offset_tie_figure(blocks, information, mode) > threshold
    low, high = float(settings.offset_scaling), float(settings.rewhitened_offset_scaling)
    return jnp.where(tied, high, low).astype(mode.dtype)


def mean_centred(settings: SamplerSettings, blocks, information, mode):
    """Which pooled parameters move centred about the groups' mean (a traced boolean each;
    :class:`bayes_scaling.engine.centring._MeanCentredOffsets`): those whose
    :func:`bayes_scaling.engine.centring.offset_tie_figures` at the mode exceed
    ``settings.mean_centred_above``, in fits of ``MEAN_CENTRING_MIN_GROUPS`` to
    ``MEAN_CENTRING_MAX_GROUPS`` groups. None where none can be."""
    groups = len(blocks[0][2]) if blocks else 0
    in_range = MEAN_CENTRING_MIN_GROUPS <= groups <= MEAN_CENTRING_MAX_GROUPS
    if settings.mean_centred_above is None or not in_range:
        return None
    return offset_tie_figures(blocks, information, mode) > settings.mean_centred_above


def reads_condition(spec: ModelSpec, centred):
    """Whether a run's choice half-way also reads the condition number of its draws'
    correlations (``PILOT_CONDITION``), a traced boolean: where some pooled parameter moves
    centred about its groups' mean (``centred`` from :func:`mean_centred`; those coordinates
    have no tie between a location and its offsets to read), from
    ``PILOT_CONDITION_MIN_GROUPS`` groups."""
    if centred is None or spec.num_groups < PILOT_CONDITION_MIN_GROUPS:
        return False
    return jnp.any(centred)


def _potential_w(potential, centring):
    """The potential of the sampler's (centred or rescaled) coordinates ``w``."""

    def potential_w(w):
        u, log_det = centring.to_u(w)
        return potential(u) - log_det

    return potential_w


def _hessian_w(potential, centring, mode_w):
    """The Hessian of the potential in the sampler's coordinates (zeros where not finite)."""
    from bayes_scaling.laplace import value_grad_hessian

    hessian = value_grad_hessian(_potential_w(potential, centring), mode_w)[2]
    return jnp.where(jnp.isfinite(hessian), hessian, 0.0)


def _mode_w(potential, centring, start):
    """The mode of the potential in the sampler's coordinates, searched from ``start`` (the
    model's mode mapped there); ``start`` where the search fails. Centred coordinates add a
    log Jacobian in the population scales, which moves their mode."""
    found = find_map(_potential_w(potential, centring), start)
    usable = jnp.all(jnp.isfinite(found.u)) & jnp.isfinite(found.potential)
    return jnp.where(usable, found.u, start)


def _whitened_potential(potential, centring, mode_w, scale_w):
    """The potential of the whitened sampler coordinates ``z``: ``w = mode_w + scale_w z``
    (``scale_w`` a matrix, the vector of a diagonal one, or a
    :class:`bayes_scaling.engine.whitening.LocationBlock`)."""
    potential_w = _potential_w(potential, centring)
    return lambda z: potential_w(mode_w + scaled(scale_w, z))


class RewhitenedCoordinates:
    """Where the chains of a re-whitened grouped fit move: the pooled parameters' offsets
    rescaled with ``SamplerSettings.rewhitened_offset_scaling`` in place of the first run's
    power (see :class:`bayes_scaling.engine.centring._ScaledOffsets`), in the first run's
    whitened basis.

    ``to_y`` maps the first run's whitened coordinates ``z`` (``w = mode_w + scale_w z`` and
    ``centring`` from ``w`` to the model's ``u``) to these coordinates ``y`` (``y = z`` where
    both powers are the same), ``to_z`` maps back, and ``potential`` is the potential of ``y``
    (with its log Jacobian, up to a constant), so that chains whose draws of ``y`` are mapped
    back by ``to_z`` draw the same posterior.
    """

    def __init__(self, potential, centring: _ScaledOffsets, mode_w, scale_w, power):
        self.centring, self.mode_w, self.scale_w = centring, mode_w, scale_w
        self.rescaled = centring.with_power(power)
        self.potential = _whitened_potential(potential, self.rescaled, mode_w, scale_w)

    def _w(self, y):
        return self.mode_w + scaled(self.scale_w, y)

    def _y(self, w):
        return unscaled(self.scale_w, w - self.mode_w)

    def to_y(self, z):
        return self._y(self.rescaled.to_w(self.centring.to_u(self._w(z))[0]))

    def to_z(self, y):
        return self._y(self.centring.to_w(self.rescaled.to_u(self._w(y))[0]))


def rewhitened_coordinates(settings: SamplerSettings, potential, centring, mode_w, scale_w):
    """The coordinates of a grouped fit's re-whitened chains (:class:`RewhitenedCoordinates`),
    or None where they are the first run's: no rescaled offsets, no re-whitening, or the same
    power for both."""
    if not isinstance(centring, _ScaledOffsets) or not centring.blocks or not settings.pilot:
        return None
    # a power chosen at the mode is traced: the map is then built whichever it is (the
    # identity where the run already moves at the re-whitened chains' power)
    chosen = isinstance(centring.power, jax.Array)
    if not chosen and float(settings.rewhitened_offset_scaling) == centring.power:
        return None
    power = float(settings.rewhitened_offset_scaling)
    return RewhitenedCoordinates(potential, centring, mode_w, scale_w, power)


def _setup(
    model, spec: ModelSpec, settings: SamplerSettings, method: str, prior_samples: int, args, key
):
    """Everything before the sampler: potential, prior draws, mode, whitening and centring."""
    k_init, k_fit, k_prior = jax.random.split(key, 3)
    info, unravel = _structure(model, args, k_init)
    potential = _potential(info, unravel, args)
    mode, scale, found, prior = _whitened_start(
        model, info, potential, k_prior, args, prior_samples
    )
    blocks = _pooled_blocks(spec, info) if _scales_offsets(spec, settings, method) else []
    information = offset_information(blocks, potential, mode) if blocks else None
    power = centred = None
    if blocks and chooses_offset_power(settings):
        power = offset_power(settings, blocks, information, mode)
    if blocks:
        centred = mean_centred(settings, blocks, information, mode)
    centring = _centring(
        spec, settings, method, info, found["hessian"], information, power, centred
    )
    mode_w = centring.to_w(mode)
    if isinstance(centring, _MeanCentredOffsets):
        # the search runs only where a parameter is chosen (a choice traced at the mode)
        chosen = jnp.any(jnp.asarray(centring.centred))
        mode_w = jax.lax.cond(
            chosen, lambda m: _mode_w(potential, centring, m), lambda m: m, mode_w
        )
    diagonal = settings.whitening in ("diagonal", "locations")
    if isinstance(centring, _ScaledOffsets) and diagonal:
        # the Hessian in the sampler's own coordinates at the mode (its diagonal ones, as for
        # the model's coordinates, where the mode search gave no usable Hessian)
        usable = jnp.any(found["hessian"] != 0)
        hessian_w = jnp.where(usable, _hessian_w(potential, centring, mode_w), 0.0)
        scale_w = diagonal_whitening(hessian_w)
        if settings.whitening == "locations":
            scale_w = location_whitening(hessian_w, scale_w, centring.location_index)
    else:
        moves = diagonal_whitening(found["hessian"]) if diagonal else scale
        if centring.blocks:
            moves = jnp.diag(moves) if moves.ndim == 1 else moves
            scale_w = jax.jacfwd(centring.to_w)(mode) @ moves
        else:
            scale_w = moves
    return {
        "info": info,
        "unravel": unravel,
        "potential": potential,
        "mode": mode,
        "scale": scale,
        "found": found,
        "prior": prior,
        "centring": centring,
        "information": information,
        "offset_power": power,
        "centred": centred,
        "mode_w": mode_w,
        "scale_w": scale_w,
        "k_fit": k_fit,
    }


def _draws_out(model, info, unravel, args, centring, mode_w, scale_w, z, target_site: str):
    """Constrained draws and pointwise log likelihood of whitened draws ``z`` (C, S, d)."""
    C, S, d = z.shape
    moves = z.reshape(C * S, d)
    moves = jax.vmap(lambda m: scaled(scale_w, m))(moves)
    flat = jax.vmap(lambda w: centring.to_u(w)[0])(mode_w + moves)
    return _outputs(model, info, unravel, args, flat, target_site, C, S)


def _result(samples, stats, log_lik, found, prior, prior_samples: int) -> dict[str, Any]:
    """The program's output dict (see :func:`program`)."""
    out: dict[str, Any] = {
        "samples": samples,
        "stats": stats,
        "log_likelihood": log_lik,
        "map": {k: v for k, v in found.items() if k != "hessian"},
    }
    if prior_samples:
        out["prior"] = {k: v[:prior_samples] for k, v in prior.items()}
    return out


def program(spec: ModelSpec, settings: SamplerSettings, prior_samples: int, method: str = "nuts"):
    """The un-jitted fitting program for one model structure.

    Returns ``run(rng_key, x, y, group_index, mask, reference) -> dict`` of arrays:
    ``samples`` (site -> ``(chains, draws, ...)``, constrained values and deterministic sites),
    ``stats`` (``diverging``, ``num_steps``, ``energy``, ``potential_energy``, ``accept_prob``,
    ``step_size``), ``log_likelihood`` (``(chains, draws, points)``), ``prior`` (site ->
    ``(prior_samples, ...)``, including the observed site), ``map`` (the mode found, its
    potential, Newton iterations and whether it converged).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    model = _counted(spec)
    target_site = f"log_{spec.law.target}"
    C, S = settings.num_chains, settings.num_samples

    def run(rng_key, x, y, group_index, mask, reference):
        args = (x, y, group_index, mask, reference)
        f = _setup(model, spec, settings, method, prior_samples, args, rng_key)
        mode, scale = f["mode"], f["scale"]
        d = mode.shape[0]
        if method == "nuts":
            potential_z = _whitened_potential(
                f["potential"], f["centring"], f["mode_w"], f["scale_w"]
            )
            ties = ()
            if settings.pilot == "auto":
                ties = _location_ties(spec, f["info"])
            coordinates = rewhitened_coordinates(
                settings, f["potential"], f["centring"], f["mode_w"], f["scale_w"]
            )
            read = reads_condition(spec, f["centred"])
            z, stats = _nuts(
                potential_z, d, f["k_fit"], settings, mode.dtype, ties, coordinates, read
            )
            if f["offset_power"] is not None:
                stats = {**stats, "offset_scaling": f["offset_power"]}
        else:
            z, stats = _independent_draws(f["potential"], mode, scale, f["k_fit"], C, S)
        samples, log_lik = _draws_out(
            model,
            f["info"],
            f["unravel"],
            args,
            f["centring"],
            f["mode_w"],
            f["scale_w"],
            z,
            target_site,
        )
        return _result(samples, stats, log_lik, f["found"], f["prior"], prior_samples)

    return run


def joint_program(spec: ModelSpec, settings: SamplerSettings, prior_samples: int):
    """NUTS over K independent data sets at once, as one sampler on their product posterior.

    Each set gets its own prior draws, mode and whitening (vectorised over sets, as in
    :func:`program`); then one NUTS run moves all sets' whitened coordinates together, with a
    diagonal mass matrix over the ``K * d`` coordinates. The sets' posteriors are independent,
    so every set's draws are draws of its own posterior; the sampler's control flow (tree
    building, U-turn checks, adaptation) runs once for all sets instead of once per set in
    lockstep, which is what makes many small fits cheap on a CPU. The price: one step size
    for all sets, and a divergence or a long trajectory in one set is one for all.

    Returns ``run(rng_key, x, y, mask, reference)`` with a leading set axis on every input and
    output; the statistics other than ``potential_energy`` (each set's own) are the joint run's,
    repeated for every set.
    """
    model = _counted(spec)
    target_site = f"log_{spec.law.target}"
    C, S = settings.num_chains, settings.num_samples

    def run(rng_key, x, y, mask, reference):
        K = y.shape[0]
        k_init, k_fit, k_prior = jax.random.split(rng_key, 3)
        one = jax.tree.map(lambda a: a[0], (x, y, None, mask, reference))
        info, unravel = _structure(model, one, k_init)

        def potential_of(xx, yy, mm, rr):
            return _potential(info, unravel, (xx, yy, None, mm, rr))

        def start(key, xx, yy, mm, rr):
            args = (xx, yy, None, mm, rr)
            return _whitened_start(
                model, info, potential_of(xx, yy, mm, rr), key, args, prior_samples
            )

        mode, scale, found, prior = jax.vmap(start)(
            jax.random.split(k_prior, K), x, y, mask, reference
        )
        d = mode.shape[1]

        def set_potential(z, m, L, xx, yy, mm, rr):
            return potential_of(xx, yy, mm, rr)(m + matvec(L, z))

        def joint(zflat):
            per_set = jax.vmap(set_potential)(
                zflat.reshape(K, d), mode, scale, x, y, mask, reference
            )
            return jnp.sum(per_set)

        joint_settings = dataclasses.replace(settings, dense_mass=False)
        z, stats = _nuts(joint, K * d, k_fit, joint_settings, mode.dtype)
        z = jnp.moveaxis(z.reshape(C, S, K, d), 2, 0)  # (K, C, S, d)

        def finish(zk, m, L, xx, yy, mm, rr):
            args = (xx, yy, None, mm, rr)
            flat = m + zk.reshape(C * S, d) @ L.T
            pe = jax.vmap(potential_of(xx, yy, mm, rr))(flat).reshape(C, S)
            samples, log_lik = _outputs(model, info, unravel, args, flat, target_site, C, S)
            return samples, log_lik, pe

        samples, log_lik, pe = jax.vmap(finish)(z, mode, scale, x, y, mask, reference)
        shared = {
            k: jnp.broadcast_to(v, (K, *v.shape))
            for k, v in stats.items()
            if k != "potential_energy"
        }
        out: dict[str, Any] = {
            "samples": samples,
            "stats": {**shared, "potential_energy": pe},
            "log_likelihood": log_lik,
            "map": {k: v for k, v in found.items() if k != "hessian"},
        }
        if prior_samples:
            out["prior"] = {k: v[:, :prior_samples] for k, v in prior.items()}
        return out

    return run
