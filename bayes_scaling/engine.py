"""Compiled fitting programs: data arrays in, draws, log likelihood and prior draws out.

One jitted program per model structure, data size bucket and sampler settings does the whole
fit on device:

1. the potential ``U(u)`` over the flat unconstrained parameter vector, built from the numpyro
   model with the data as arguments, and draws from the prior (the ``prior`` groups; their
   median is where the mode search starts, as numpyro's ``init_to_median``);
2. the mode and the Hessian there (:func:`bayes_scaling.laplace.find_map`), giving a whitening
   ``u = m + L z`` (:func:`bayes_scaling.laplace.whitening`);
3. NUTS in ``z`` with numpyro's functional kernel (mass matrix -- dense for small models -- and
   step size adapted in warmup; pooled parameters partially centred per group,
   :class:`_PartialCentring`; chains started from independent Laplace draws), run as one
   ``lax.scan`` per chain -- or, for ``method="laplace"``, independent draws of ``z ~ N(0, I)``;
4. the draws mapped back to the model's sites (constrained values and deterministic sites),
   the pointwise log likelihood and draws from the prior and prior predictive.

Nothing here knows pandas or xarray. :mod:`bayes_scaling.inference` turns the arrays into an
``InferenceData``.

Why not ``numpyro.infer.MCMC``: on CPU its driver costs about 2 ms per iteration on top of the
leapfrog steps (measured with a 7-dimensional standard normal: 3 s for 1,300 iterations where
the same kernel in one ``lax.scan`` takes 0.05 s), and it cannot take the whitening as an
argument. The numpyro kernel itself (``numpyro.infer.hmc.hmc``) is used unchanged.

Data are padded to bucketed sizes (masked rows do not count) and the model's reference point is
an argument, so fits of different data of similar size -- backtest folds, bootstrap
resamples, ``fit_many`` -- reuse one compiled program.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from bayes_scaling import _jaxcache
from bayes_scaling.laplace import find_map, whitening
from bayes_scaling.models import ModelSpec, build_model

__all__ = [
    "BATCHINGS",
    "CHAIN_METHODS",
    "METHODS",
    "TRACE_COUNTS",
    "SamplerSettings",
    "bucket_size",
    "compiled",
    "joint_program",
    "pad_inputs",
    "program",
    "program_cache_dir",
    "run_fit",
]

CHAIN_METHODS = ("sequential", "vectorized", "parallel")
DENSE_MASS_MAX_DIM = 16
# partial centring needs the population scale pinned down by the groups; with fewer, the
# posterior of sigma is wide, the best parametrisation changes across it, and the non-centred
# form is the safer one (3 Porian groups: 0 divergences non-centred, 40-160 partially centred)
CENTRING_MIN_GROUPS = 10
METHODS = ("nuts", "laplace")
BATCHINGS = ("vmap", "joint")

TRACE_COUNTS: dict[str, int] = {}  # model traces per law name; read by tests

# chains start from independent draws of the Laplace approximation (scaled by START_SCALE):
# dispersed starts, so that R-hat can flag chains that end in different regions
START_SCALE = 1.0


@dataclasses.dataclass(frozen=True)
class SamplerSettings:
    """NUTS settings; part of the compiled-program cache key.

    Parameters
    ----------
    num_chains, num_warmup, num_samples : int
        Chains, warmup iterations per chain (step size and dense mass matrix adaptation) and
        kept draws per chain.
    target_accept_prob : float, default 0.9
    dense_mass : bool or None, default None
        Adapt a dense mass matrix (in the whitened coordinates) rather than a diagonal one.
        ``None`` chooses dense for at most ``DENSE_MASS_MAX_DIM`` (16) parameters and diagonal
        above: numpyro estimates the mass matrix from warmup windows of 25, 50, 100, ... draws,
        and a dense estimate from fewer draws than dimensions is singular, shrunk towards a tiny
        multiple of the identity, which makes the step size collapse (a 100-group fit spent 94 s
        of 98 in warmup that way; diagonal: 8.5 s). The whitening already removes the
        correlations at the mode.
    max_tree_depth : int, default 10
    chain_method : {"sequential", "vectorized", "parallel"} or None
        How chains run: one after another in one compiled loop, in lockstep with ``vmap``, or
        one per device. ``None`` picks ``vectorized`` on GPU/TPU and ``sequential`` on CPU,
        where lockstep NUTS is several times slower (measured in ``benchmarks/``).
    progress_bar : bool, default False
        Ignored (the compiled program runs as one call); kept for compatibility.
    partial_centring : bool, default True
        For pooled parameters with at least ``CENTRING_MIN_GROUPS`` (10) groups, let NUTS move
        in coordinates partially centred per group, by how strongly the group's data determine
        its value (see :class:`_PartialCentring`); False samples the model's non-centred form
        as written.
    """

    num_chains: int = 4
    num_warmup: int = 500
    num_samples: int = 1000
    target_accept_prob: float = 0.9
    dense_mass: bool | None = None
    max_tree_depth: int = 10
    chain_method: str | None = None
    progress_bar: bool = False
    partial_centring: bool = True

    def __post_init__(self) -> None:
        for name in ("num_chains", "num_warmup", "num_samples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "num_warmup" else 1):
                raise ValueError(f"{name} must be a {'non-negative' if name == 'num_warmup' else 'positive'} integer; got {v!r}")
        if not 0 < self.target_accept_prob < 1:
            raise ValueError(f"target_accept_prob must be in (0, 1); got {self.target_accept_prob}")
        if self.chain_method is not None and self.chain_method not in CHAIN_METHODS:
            raise ValueError(f"chain_method must be one of {', '.join(CHAIN_METHODS)} or None; got {self.chain_method!r}")
        if isinstance(self.max_tree_depth, bool) or not isinstance(self.max_tree_depth, int) or self.max_tree_depth < 1:
            raise ValueError(f"max_tree_depth must be a positive integer; got {self.max_tree_depth!r}")

    def dense_for(self, d: int) -> bool:
        """Whether a ``d``-parameter model adapts a dense mass matrix."""
        return self.dense_mass if self.dense_mass is not None else d <= DENSE_MASS_MAX_DIM

    def resolved_chain_method(self) -> str:
        if self.chain_method is not None:
            return self.chain_method
        return "sequential" if jax.default_backend() == "cpu" else "vectorized"

    def compile_key(self) -> tuple:
        """The fields that change the compiled program."""
        return (self.num_chains, self.num_warmup, self.num_samples, float(self.target_accept_prob),
                self.dense_mass, self.max_tree_depth, self.resolved_chain_method(), self.partial_centring)


# --------------------------------------------------------------------------- data padding


def bucket_size(n: int) -> int:
    """Padded size for ``n`` data points: a multiple of 8 up to 64, then 8 sizes per doubling.

    At most 12.5% of the rows are padding, and data sets of nearby sizes share one program.

    Examples
    --------
    >>> [bucket_size(n) for n in (1, 9, 64, 65, 240, 241, 24000)]
    [8, 16, 64, 72, 240, 256, 24576]
    """
    if n < 1:
        raise ValueError(f"need at least one data point; got {n}")
    if n <= 64:
        return 8 * math.ceil(n / 8)
    step = 2 ** (math.floor(math.log2(n)) - 3)
    return step * math.ceil(n / step)


def pad_inputs(
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    group_index: np.ndarray | None,
    size: int,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None, np.ndarray]:
    """Pad arrays to ``size`` rows: covariates and target by their means, group 0, mask False.

    Padded rows get ordinary values so the masked likelihood and its gradient stay finite.
    """
    n = int(y.shape[0])
    pad = size - n
    if pad < 0:
        raise ValueError(f"cannot pad {n} rows to {size}")
    xp = {k: np.concatenate([np.asarray(v, np.float32), np.full(pad, np.mean(v), np.float32)]) for k, v in x.items()}
    yp = np.concatenate([np.asarray(y, np.float32), np.full(pad, np.mean(y), np.float32)])
    gp = None if group_index is None else np.concatenate([np.asarray(group_index, np.int32), np.zeros(pad, np.int32)])
    mask = np.arange(size) < n
    return xp, yp, gp, mask


# --------------------------------------------------------------------------- the program


def _counted(spec: ModelSpec):
    inner = build_model(spec)
    name = spec.law.name

    def model(*args, **kwargs):
        TRACE_COUNTS[name] = TRACE_COUNTS.get(name, 0) + 1
        return inner(*args, **kwargs)

    model.spec = spec
    return model


def _matvec(a, v):
    """``a @ v`` written as a multiply and a sum: under ``vmap`` (many sets in lockstep) a batch
    of tiny matrix-vector products is several times slower on a CPU than this."""
    return jnp.sum(a * v, axis=-1)


def _nuts(potential, d: int, rng_key, settings: SamplerSettings, dtype):
    """Run the chains in whitened coordinates; returns per-chain arrays of shape (C, S, ...)."""
    from numpyro.infer.hmc import hmc

    init_kernel, sample_kernel = hmc(potential, algo="NUTS")
    C, W, S = settings.num_chains, settings.num_warmup, settings.num_samples
    key_chains, key_start = jax.random.split(rng_key)

    def one_chain(key, z0):
        z0 = jnp.where(jnp.isfinite(potential(z0)), z0, jnp.zeros_like(z0))
        state = init_kernel(
            z0, W, dense_mass=settings.dense_for(d), target_accept_prob=settings.target_accept_prob,
            max_tree_depth=settings.max_tree_depth, rng_key=key,
        )

        def step(s, _):
            s = sample_kernel(s)  # adapts while s.i < W
            return s, (s.z, s.diverging, s.num_steps, s.energy, s.potential_energy, s.accept_prob)

        # one scan over warmup and draws: the kernel is traced and compiled once
        last, out = jax.lax.scan(step, state, None, length=W + S)
        return tuple(a[W:] for a in out), last.adapt_state.step_size

    keys = jax.random.split(key_chains, C)
    starts = START_SCALE * jax.random.normal(key_start, (C, d), dtype=dtype)
    method = settings.resolved_chain_method()
    if method == "vectorized":
        out, step_size = jax.vmap(one_chain)(keys, starts)
    elif method == "parallel":
        out, step_size = _parallel_chains(one_chain, keys, starts)
    else:
        out, step_size = jax.lax.map(lambda a: one_chain(*a), (keys, starts))
    z, diverging, num_steps, energy, pe, accept = out
    stats = {
        "diverging": diverging, "num_steps": num_steps, "energy": energy,
        "potential_energy": pe, "accept_prob": accept, "step_size": step_size,
    }
    return z, stats


def _chain_devices(num_chains: int) -> int:
    """How many local devices the chains split over: the most that divides them evenly."""
    devices = len(jax.local_devices())
    return max(k for k in range(1, min(devices, num_chains) + 1) if num_chains % k == 0)


def _parallel_chains(one_chain, keys, starts):
    """Chains split over the local devices with ``shard_map`` (sequential within a device)."""
    from jax.sharding import Mesh
    from jax.sharding import PartitionSpec as P

    devices = jax.local_devices()
    n = _chain_devices(keys.shape[0])
    if n == 1:
        return jax.lax.map(lambda a: one_chain(*a), (keys, starts))
    mesh = Mesh(np.array(devices[:n]), ("chain",))

    def block(k, s):
        return jax.lax.map(lambda a: one_chain(*a), (k, s))

    return jax.shard_map(block, mesh=mesh, in_specs=(P("chain"), P("chain")), out_specs=P("chain"), check_vma=False)(keys, starts)


def _structure(model, args, rng_key):
    """numpyro's view of the model at ``args``: its ``initialize_model`` info and the unraveller
    of the flat unconstrained vector. Only shapes matter: the potential and the constraining map
    are rebuilt for other data of the same shapes with :func:`_potential` and :func:`_outputs`."""
    from numpyro.infer import init_to_uniform
    from numpyro.infer.util import initialize_model

    # the model's own initial point is unused (and compiled away)
    info = initialize_model(rng_key, model, model_args=args, init_strategy=init_to_uniform, dynamic_args=True)
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
    u0, _ = ravel_pytree({
        name: jnp.median(biject_to(info.model_trace[name]["fn"].support).inv(prior[name]), axis=0)
        for name in info.param_info.z
    })
    found = find_map(potential, u0)
    usable = jnp.all(jnp.isfinite(found.u)) & jnp.isfinite(found.potential)
    mode = jnp.where(usable, found.u, u0)
    scale = whitening(jnp.where(usable, found.hessian, jnp.eye(u0.shape[0], dtype=u0.dtype)))
    found_map = {"u": mode, "potential": found.potential, "iterations": found.iterations, "converged": found.converged,
                 "hessian": jnp.where(usable, found.hessian, 0.0)}
    return mode, scale, found_map, prior


def _pooled_blocks(spec: ModelSpec, info) -> list[tuple]:
    """For each pooled parameter: flat positions of its population location, population scale
    and group offsets, with the maps from the unconstrained location and scale to their values.
    Empty without groups or pooled parameters."""
    from numpyro.distributions.transforms import biject_to

    if not spec.num_groups:
        return []
    leaves, treedef = jax.tree.flatten(info.param_info.z)
    ends = np.cumsum([int(np.size(leaf)) for leaf in leaves])
    positions = jax.tree.unflatten(
        treedef, [np.arange(e - np.size(leaf), e).reshape(np.shape(leaf)) for e, leaf in zip(ends, leaves)]
    )
    blocks = []
    for name, mode in spec.pooling_map.items():
        if mode != "pooled":
            continue
        loc, sd = f"{name}_pop_loc", f"{name}_pop_sd"
        blocks.append((
            int(positions[loc]), int(positions[sd]), np.asarray(positions[f"{name}_z"]).reshape(-1),
            biject_to(info.model_trace[loc]["fn"].support), biject_to(info.model_trace[sd]["fn"].support),
        ))
    return blocks


class _PartialCentring:
    """Per-group partial centring of pooled parameters, chosen at the mode.

    The model is written non-centred: group values ``u_g = mu + sigma * z_g`` with
    ``z_g ~ N(0, 1)``. When a group's data pin ``u_g`` down, that parametrisation makes a funnel
    between ``log sigma`` and the ``z_g`` (each ``z_g`` scales as ``1/sigma``), and NUTS needs
    long trajectories; the centred one (sampling ``u_g`` itself) is then the near-Gaussian one,
    and the other way round for weakly informed groups. NUTS here runs in
    ``w_g = lam_g * mu + sigma**lam_g * z_g`` (``lam_g = 0``: non-centred, ``1``: centred), with
    ``lam_g = 1 - 1 / H_gg`` from the Hessian of the non-centred potential at the mode: ``H_gg
    = 1 + sigma**2 * I_g`` (prior plus data information about ``u_g``), and ``lam_g`` is the
    data's share of the precision, the choice that makes a normal-normal model's posterior
    independent of ``(mu, sigma)``. The model and its outputs stay non-centred; the potential
    in ``w`` adds the log Jacobian ``sum_g lam_g log sigma``. Used from ``CENTRING_MIN_GROUPS``
    (10) groups up: with fewer the population scale is too uncertain for one choice of
    ``lam_g`` to suit the whole posterior. With no blocks it is the identity.
    """

    def __init__(self, blocks, hessian):
        diag = jnp.diagonal(hessian)
        self.blocks = blocks
        # an unusable Hessian (zeros) gives lam = 0: the model's own non-centred form
        self.lams = [jnp.clip(1.0 - 1.0 / jnp.maximum(diag[zi], 1.0), 0.0, 1.0) for _, _, zi, _, _ in blocks]

    def to_w(self, u):
        w = u
        for (li, si, zi, t_loc, t_sd), lam in zip(self.blocks, self.lams):
            mu, sigma = t_loc(u[li]), t_sd(u[si])
            w = w.at[zi].set(lam * mu + sigma**lam * u[zi])
        return w

    def to_u(self, w):
        """Non-centred coordinates of ``w`` and ``log |det du/dw|``."""
        u, log_det = w, 0.0
        for (li, si, zi, t_loc, t_sd), lam in zip(self.blocks, self.lams):
            mu, sigma = t_loc(w[li]), t_sd(w[si])
            u = u.at[zi].set((w[zi] - lam * mu) * sigma ** (-lam))
            log_det = log_det - jnp.sum(lam) * jnp.log(sigma)
        return u, log_det


def _outputs(model, info, unravel, args, flat, target_site: str, C: int, S: int):
    """Constrained draws (and deterministic sites) and the pointwise log likelihood, ``(C, S, ...)``."""
    from numpyro.infer.util import log_likelihood as _numpyro_log_likelihood

    constrain = info.postprocess_fn(*args)
    samples = jax.vmap(lambda u: constrain(unravel(u)))(flat)
    log_lik = _numpyro_log_likelihood(model, samples, *args, parallel=True)[target_site]
    return {k: v.reshape((C, S) + v.shape[1:]) for k, v in samples.items()}, log_lik.reshape(C, S, -1)


def _independent_draws(potential, mode, scale, rng_key, C: int, S: int):
    """``method="laplace"``: independent draws of ``z ~ N(0, I)`` and sampler-shaped statistics."""
    d = mode.shape[0]
    dtype = mode.dtype
    z = jax.random.normal(rng_key, (C, S, d), dtype=dtype)
    pe = jax.vmap(lambda zz: potential(mode + scale @ zz))(z.reshape(C * S, d)).reshape(C, S)
    stats = {
        "diverging": jnp.zeros((C, S), bool), "num_steps": jnp.zeros((C, S), jnp.int32),
        "energy": pe + 0.5 * jnp.sum(z**2, -1), "potential_energy": pe,
        "accept_prob": jnp.ones((C, S), dtype), "step_size": jnp.zeros((C,), dtype),
    }
    return z, stats


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
        k_init, k_fit, k_prior = jax.random.split(rng_key, 3)
        info, unravel = _structure(model, args, k_init)
        potential = _potential(info, unravel, args)
        mode, scale, found, prior = _whitened_start(model, info, potential, k_prior, args, prior_samples)
        d = mode.shape[0]
        centre = method == "nuts" and settings.partial_centring and spec.num_groups >= CENTRING_MIN_GROUPS
        # the sampler's coordinates: the model's own, or partially centred (identity without blocks)
        centring = _PartialCentring(_pooled_blocks(spec, info) if centre else [], found["hessian"])
        mode_w = centring.to_w(mode)
        scale_w = jax.jacfwd(centring.to_w)(mode) @ scale if centring.blocks else scale

        def potential_w(w):
            u, log_det = centring.to_u(w)
            return potential(u) - log_det

        if method == "nuts":
            z, stats = _nuts(lambda z: potential_w(mode_w + _matvec(scale_w, z)), d, k_fit, settings, mode.dtype)
        else:
            z, stats = _independent_draws(potential, mode, scale, k_fit, C, S)
        flat = jax.vmap(lambda w: centring.to_u(w)[0])(mode_w + z.reshape(C * S, d) @ scale_w.T)
        samples, log_lik = _outputs(model, info, unravel, args, flat, target_site, C, S)
        found = {k: v for k, v in found.items() if k != "hessian"}
        out: dict[str, Any] = {"samples": samples, "stats": stats, "log_likelihood": log_lik, "map": found}
        if prior_samples:
            out["prior"] = {k: v[:prior_samples] for k, v in prior.items()}
        return out

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
            return _whitened_start(model, info, potential_of(xx, yy, mm, rr), key, args, prior_samples)

        mode, scale, found, prior = jax.vmap(start)(jax.random.split(k_prior, K), x, y, mask, reference)
        d = mode.shape[1]

        def set_potential(z, m, L, xx, yy, mm, rr):
                return potential_of(xx, yy, mm, rr)(m + _matvec(L, z))

        def joint(zflat):
            per_set = jax.vmap(set_potential)(zflat.reshape(K, d), mode, scale, x, y, mask, reference)
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
        shared = {k: jnp.broadcast_to(v, (K,) + v.shape) for k, v in stats.items() if k != "potential_energy"}
        out: dict[str, Any] = {
            "samples": samples, "stats": {**shared, "potential_energy": pe},
            "log_likelihood": log_lik, "map": {k: v for k, v in found.items() if k != "hessian"},
        }
        if prior_samples:
            out["prior"] = {k: v[:, :prior_samples] for k, v in prior.items()}
        return out

    return run


def cache_from_environment() -> str | None:
    """Use ``$BAYES_SCALING_JAX_CACHE`` as JAX's persistent compilation cache when it is set.

    Compiling a fitting program takes 10-20 s on a CPU; with the cache, a later process that
    fits the same model structure, data size bucket and settings loads the executable instead.
    The command line sets a cache by default (``~/.cache/bayes-scaling/jax``); in Python it is
    used when the variable names a directory (or when JAX's own cache directory is configured).
    Must run before JAX's first compilation in the process to take effect; runs when this
    module is imported. Returns the directory in use, if any.
    """
    path = os.environ.get("BAYES_SCALING_JAX_CACHE")
    if path and not jax.config.jax_compilation_cache_dir:
        return _jaxcache.enable(path)
    return jax.config.jax_compilation_cache_dir


cache_from_environment()

_PROGRAMS: dict[Any, Any] = {}


def compiled(spec: ModelSpec, num_points: int, settings: SamplerSettings, prior_samples: int, method: str = "nuts"):
    """The jitted program for a model structure, padded data size and settings (cached)."""
    key = (spec.structure, bucket_size(num_points), settings.compile_key(), int(prior_samples), method)
    fn = _PROGRAMS.get(key)
    if fn is None:
        fn = jax.jit(program(spec, settings, prior_samples, method))
        if len(_PROGRAMS) >= 32:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        _PROGRAMS[key] = fn
    return fn


# --------------------------------------------------------------------------- program files
#
# JAX's persistent compilation cache skips XLA compilation, but every new process still traces
# and lowers the program first (about 2.5 s for the Chinchilla fit on a 2-core CPU). A program
# file -- the traced program serialised with ``jax.export`` -- skips that too: a second
# ``bayes-scaling fit`` of same-shaped data deserialises it (milliseconds) and the compilation
# cache supplies the executable. Files are keyed by everything the program depends on,
# including a digest of this package's source, so an edit or an upgrade never reuses a stale
# one. Used when a compilation cache directory is configured (the CLI does) and the law is one
# of the package's own (a user's law function has no source digest here); ``flatbuffers``
# must be installed (``jax.export`` serialisation needs it), else programs are traced as usual.


def program_cache_dir() -> str | None:
    """Where program files go: ``$BAYES_SCALING_PROGRAM_CACHE``, else ``<jax cache>/programs``.

    ``None`` (no program files) when neither is set, or the variable is empty or ``0``.
    """
    env = os.environ.get("BAYES_SCALING_PROGRAM_CACHE")
    if env is not None:
        return env if env not in ("", "0") else None
    base = jax.config.jax_compilation_cache_dir
    return os.path.join(base, "programs") if base else None


@functools.cache
def _source_digest() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in ("engine.py", "laplace.py", "models.py", "laws.py", "priors.py", "__init__.py"):
        path = here / name
        h.update(name.encode())
        h.update(path.read_bytes() if path.exists() else b"")
    return h.hexdigest()


def _program_file_key(spec: ModelSpec, args, settings: SamplerSettings, prior_samples: int, method: str) -> str | None:
    if getattr(spec.law.fn, "__module__", None) != "bayes_scaling.laws" or settings.resolved_chain_method() == "parallel":
        return None
    from importlib.metadata import version

    from bayes_scaling import __version__

    avals = [(jax.tree_util.keystr(path), tuple(np.shape(leaf)), str(np.asarray(leaf).dtype))
             for path, leaf in jax.tree_util.tree_flatten_with_path(args)[0]]
    parts = [
        __version__, jax.__version__, version("numpyro"), _source_digest(), jax.default_backend(),
        spec.law.name, spec.priors.to_json(), spec.likelihood, spec.pooling, spec.num_groups,
        settings.compile_key(), int(prior_samples), method, avals,
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def _from_program_file(spec, args, settings, prior_samples, method):
    """A callable for the program, from its file when there is one (written when not)."""
    directory = program_cache_dir()
    if directory is None:
        return None
    try:
        from jax._src.export import serialization  # noqa: F401  (needs flatbuffers)
    except ImportError:
        return None
    name = _program_file_key(spec, args, settings, prior_samples, method)
    if name is None:
        return None
    fn = _PROGRAMS.get(("file", name))
    if fn is not None:
        return fn
    path = Path(directory) / f"{name}.jaxprog"
    exported = None
    if path.is_file():
        try:
            exported = jax.export.deserialize(bytearray(path.read_bytes()))
        except Exception:  # noqa: BLE001 - a corrupt or foreign file is rebuilt
            exported = None
    if exported is None:
        jitted = compiled(spec, int(np.shape(args[2])[0]), settings, prior_samples, method)
        exported = jax.export.export(jitted)(*args)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(exported.serialize())
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache: trace every time
    fn = jax.jit(exported.call)
    _PROGRAMS[("file", name)] = fn
    return fn


def run_fit(
    spec: ModelSpec,
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    group_index: np.ndarray | None,
    rng_key: jax.Array,
    settings: SamplerSettings = SamplerSettings(),
    *,
    prior_samples: int = 500,
    method: str = "nuts",
    pad_to: int | None = None,
) -> dict[str, Any]:
    """Fit one data set: pad, run the compiled program, return numpy arrays cut to ``n`` points.

    ``pad_to`` pads to the bucket of ``max(n, pad_to)`` rows, so that fits of subsets of one
    data set (the leave-future-out fits of a discrepancy calibration) share one program.
    """
    n = int(np.shape(y)[0])
    size = bucket_size(max(n, int(pad_to or 0)))
    xp, yp, gp, mask = pad_inputs(x, y, group_index, size)
    reference = {k: np.float32(v) for k, v in spec.reference_map.items()}
    args = (rng_key, xp, yp, gp, mask, reference)
    fn = _from_program_file(spec, args, settings, prior_samples, method)
    if fn is None:
        fn = compiled(spec, size, settings, prior_samples, method)
    out = jax.device_get(fn(*args))
    out["log_likelihood"] = np.asarray(out["log_likelihood"])[..., :n]
    if "prior" in out:
        site = f"log_{spec.law.target}"
        out["prior"][site] = np.asarray(out["prior"][site])[..., :n]
    return out


def run_many(
    spec: ModelSpec,
    xs: list[Mapping[str, np.ndarray]],
    ys: list[np.ndarray],
    references: list[Mapping[str, float]],
    rng_key: jax.Array,
    settings: SamplerSettings = SamplerSettings(),
    *,
    prior_samples: int = 0,
    method: str = "nuts",
    batching: str = "vmap",
) -> list[dict[str, Any]]:
    """Fit K data sets of one model structure in one vectorised call.

    Every set is padded to the bucket of the largest and has its own reference point, key,
    mode and whitening. ``batching="joint"`` (NUTS only) runs one sampler over all sets'
    whitened coordinates (:func:`joint_program`; chains split over the local devices);
    ``"vmap"`` runs one sampler per set in lockstep with ``jax.vmap`` (sets split over the
    local devices), each with its own step size and mass matrix. Returns one output dict per
    set, as :func:`run_fit` does.
    """
    if batching not in BATCHINGS:
        raise ValueError(f"batching must be one of {', '.join(BATCHINGS)}; got {batching!r}")
    if not xs:
        raise ValueError("fit_many needs at least one data set")
    sizes = [int(np.shape(y)[0]) for y in ys]
    size = bucket_size(max(sizes))
    padded = [pad_inputs(x, y, None, size) for x, y in zip(xs, ys)]
    x = {k: np.stack([p[0][k] for p in padded]) for k in padded[0][0]}
    y = np.stack([p[1] for p in padded])
    mask = np.stack([p[3] for p in padded])
    reference = {k: np.asarray([r[k] for r in references], np.float32) for k in references[0]}
    if batching == "joint" and method == "nuts":
        return _split_outputs(_run_joint(spec, x, y, mask, reference, rng_key, settings, prior_samples), sizes, spec)
    keys = jax.random.split(rng_key, len(ys))
    # the sets are split over the local devices (host devices on CPU: one per core when the
    # XLA flag asks for them, as the CLI and benchmarks do); the set count is padded to a
    # multiple of the device count by repeating the last set, whose extra results are dropped
    devices = jax.local_devices()[: len(ys)]
    per_device = math.ceil(len(ys) / len(devices))
    total = per_device * len(devices)
    if total > len(ys):
        extend = lambda a: np.concatenate([a, np.repeat(a[-1:], total - len(ys), axis=0)])  # noqa: E731
        keys = extend(np.asarray(keys))
        x, y, mask = {k: extend(v) for k, v in x.items()}, extend(y), extend(mask)
        reference = {k: extend(v) for k, v in reference.items()}
    cache_key = ("many", spec.structure, size, total, len(devices), settings.compile_key(), int(prior_samples), method)
    fn = _PROGRAMS.get(cache_key)
    if fn is None:
        one = program(spec, settings, prior_samples, method)
        batched = jax.vmap(lambda k, xx, yy, mm, rr: one(k, xx, yy, None, mm, rr))
        if len(devices) > 1:
            from jax.sharding import Mesh
            from jax.sharding import PartitionSpec as P

            mesh = Mesh(np.array(devices), ("sets",))
            batched = jax.shard_map(batched, mesh=mesh, in_specs=P("sets"), out_specs=P("sets"), check_vma=False)
        fn = jax.jit(batched)
        _PROGRAMS[cache_key] = fn
    return _split_outputs(jax.device_get(fn(keys, x, y, mask, reference)), sizes, spec)


def _run_joint(spec, x, y, mask, reference, rng_key, settings, prior_samples):
    K, size = y.shape
    devices = jax.local_devices()
    if settings.chain_method is None:
        # chains over the local devices when there are several (host devices on a CPU)
        parallel = _chain_devices(settings.num_chains) > 1
        settings = dataclasses.replace(settings, chain_method="parallel" if parallel else settings.resolved_chain_method())
    cache_key = ("joint", spec.structure, size, K, len(devices), settings.compile_key(), int(prior_samples))
    fn = _PROGRAMS.get(cache_key)
    if fn is None:
        fn = jax.jit(joint_program(spec, settings, prior_samples))
        _PROGRAMS[cache_key] = fn
    return jax.device_get(fn(rng_key, x, y, mask, reference))


def _split_outputs(out, sizes, spec):
    site = f"log_{spec.law.target}"
    results = []
    for i, n in enumerate(sizes):
        one_out = jax.tree.map(lambda a, i=i: np.asarray(a)[i], out)
        one_out["log_likelihood"] = one_out["log_likelihood"][..., :n]
        if "prior" in one_out:
            one_out["prior"][site] = one_out["prior"][site][..., :n]
        results.append(one_out)
    return results
