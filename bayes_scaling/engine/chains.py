"""Running the chains: numpyro's NUTS or jittered static HMC in whitened coordinates, chains
in sequence, vectorized or over several devices, and a grouped fit's re-whitening by draws the
chains have made (a pilot run, or the choice half-way through warmup)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayes_scaling.engine.settings import (
    JITTER_SCHEDULE_SEED,
    PILOT_CONDITION,
    PILOT_SHRINK,
    PILOT_TIE,
    START_SCALE,
    SamplerSettings,
)


def _kernel(potential, d: int, settings: SamplerSettings, target=None):
    """numpyro's NUTS kernel for ``potential``: ``init(key, z0) -> state`` and ``sample_kernel``.

    numpyro's ``init_kernel`` sets the adaptation schedule that ``sample_kernel`` reads, so a
    program that only runs ``sample_kernel`` on a given state calls ``init`` once first (its
    result is unused and compiled away). With ``settings.trajectory_length`` set, the kernel is
    static HMC with a jittered trajectory instead (see :func:`_jittered`). The step-size
    adaptation aims at ``target`` (a number or a traced scalar), by default
    ``settings.target_accept_prob``.
    """
    from numpyro.infer.hmc import hmc

    static = settings.static_length()
    init_kernel, sample_kernel = hmc(potential, algo="NUTS" if static is None else "HMC")

    def init(key, z0):
        z0 = jnp.where(jnp.isfinite(potential(z0)), z0, jnp.zeros_like(z0))
        length = {} if static is None else {"trajectory_length": static}
        return init_kernel(
            z0,
            settings.num_warmup,
            dense_mass=settings.dense_for(d),
            target_accept_prob=settings.target_accept_prob if target is None else target,
            max_tree_depth=settings.max_tree_depth,
            rng_key=key,
            **length,
        )

    return init, sample_kernel if static is None else _jittered(sample_kernel, settings)


def _jittered(sample_kernel, settings: SamplerSettings):
    """Static HMC whose trajectory length is drawn afresh each iteration.

    The length is uniform on [0.5, 1.5] times ``settings.trajectory_length`` (in the whitened
    coordinates, where the posterior's scales are near 1), so that no fixed length resonates
    with a direction's period, and is capped at ``2 ** max_tree_depth - 1`` leapfrog steps, the
    most a NUTS tree takes. Each chain draws it with its own key, or, with
    ``settings.shared_jitter``, every chain (and every data set of a vectorised run) reads it
    from one schedule indexed by the iteration, so that sets in lockstep do alike work
    (:func:`bayes_scaling.engine.run_many`).
    """
    mean = settings.static_length() or 0.0
    most_steps = 2**settings.max_tree_depth - 1
    schedule = jax.random.PRNGKey(JITTER_SCHEDULE_SEED)

    def step(state):
        key, sub = jax.random.split(state.rng_key)
        if settings.shared_jitter:
            sub = jax.random.fold_in(schedule, state.i)
        length = mean * jax.random.uniform(sub, minval=0.5, maxval=1.5, dtype=state.z.dtype)
        length = jnp.minimum(length, most_steps * state.adapt_state.step_size)
        return sample_kernel(state._replace(rng_key=key, trajectory_length=length))

    return step


def _recorded(sample_kernel):
    """One NUTS iteration as a scan step: the new state and what is kept of it."""

    def step(s, _):
        s = sample_kernel(s)  # adapts while s.i < num_warmup
        return s, (s.z, s.diverging, s.num_steps, s.energy, s.potential_energy, s.accept_prob)

    return step


def _chain_starts(rng_key, settings: SamplerSettings, d: int, dtype):
    """Per-chain keys and starting points (independent Laplace draws in whitened coordinates)."""
    key_chains, key_start = jax.random.split(rng_key)
    keys = jax.random.split(key_chains, settings.num_chains)
    starts = START_SCALE * jax.random.normal(key_start, (settings.num_chains, d), dtype=dtype)
    return keys, starts


def _map_chains(fn, method: str, *xs):
    """``fn`` applied to every chain's slice of ``xs`` as ``method`` asks."""
    if method == "vectorized":
        return jax.vmap(fn)(*xs)
    if method == "parallel":
        return _parallel_chains(fn, *xs)
    return jax.lax.map(lambda a: fn(*a), xs)


def _sampler_stats(out, step_size) -> tuple[Any, dict[str, Any]]:
    """The draws and the ``stats`` dict from the recorded iterations (C, S, ...)."""
    z, diverging, num_steps, energy, pe, accept = out
    stats = {
        "diverging": diverging,
        "num_steps": num_steps,
        "energy": energy,
        "potential_energy": pe,
        "accept_prob": accept,
        "step_size": step_size,
    }
    return z, stats


def _pooled_step_size(states):
    """The chains' states after warmup, every chain at the smallest step size any of them adapted.

    For static HMC (``SamplerSettings.trajectory_length`` set). Each chain's step-size adaptation
    is a noisy estimate from its own warmup; on a hierarchical posterior a chain that adapted
    where the population scales are small may take a step too long for their upper tail, where
    its acceptance collapses and it sticks (gadre's three corpora, 2 of 10 seeds: one chain
    accepting 0.67-0.82, R-hat 1.03-1.06). The smallest step suits what every chain has seen,
    and with a fixed trajectory length all chains then do the same work per draw, so that
    chains side by side on several devices finish together.
    """
    step = states.adapt_state.step_size
    pooled = jnp.full_like(step, jnp.min(step))
    return states._replace(adapt_state=states.adapt_state._replace(step_size=pooled))


def _nuts(
    potential,
    d: int,
    rng_key,
    settings: SamplerSettings,
    dtype,
    ties=(),
    coordinates=None,
    read_condition=False,
):
    """Run the chains in whitened coordinates; returns per-chain arrays of shape (C, S, ...).

    NUTS runs each chain's warmup and draws in one scan; static HMC runs every chain's warmup,
    then pools the step sizes (:func:`_pooled_step_size`), then the draws. With
    ``settings.pilot`` True a pilot run comes first (:func:`_piloted`); with ``"auto"`` and
    ``ties`` (each pooled parameter's location position and its offsets' positions, as
    :func:`bayes_scaling.engine.centring._pooled_blocks` gives them), static HMC looks at its
    own warmup half-way and re-whitens only where a location is tied to its offsets
    (:func:`_gated`). ``coordinates``: where re-whitened chains move (:func:`_rewhitened`);
    ``read_condition``: whether the choice half-way reads the draws' condition number."""
    if settings.pilot is True:
        return _piloted(potential, d, rng_key, settings, dtype, coordinates)
    if settings.pilot == "auto" and ties and settings.static_length() is not None:
        return _gated(potential, d, rng_key, settings, dtype, ties, coordinates, read_condition)
    init, sample_kernel = _kernel(potential, d, settings)
    W, S = settings.num_warmup, settings.num_samples
    method = settings.resolved_chain_method()
    keys, starts = _chain_starts(rng_key, settings, d, dtype)

    if settings.static_length() is None:

        def one_chain(key, z0):
            state = init(key, z0)
            # one scan over warmup and draws: the kernel is traced and compiled once
            last, out = jax.lax.scan(_recorded(sample_kernel), state, None, length=W + S)
            return tuple(a[W:] for a in out), last.adapt_state.step_size

        out, step_size = _map_chains(one_chain, method, keys, starts)
        return _sampler_stats(out, step_size)

    if settings.adaptation_target() != settings.target_accept_prob:
        # the first half as the choice half-way runs it, the rest aiming lower (_go_on)
        half = settings.gate_phases()[0]

        def first_half(key, z0):
            state = init(key, z0)
            return jax.lax.scan(lambda s, _: (sample_kernel(s), None), state, None, length=half)[0]

        states = _map_chains(first_half, method, keys, starts)
        return _go_on(potential, d, settings, dtype, states, half)

    def warm(key, z0):
        state = init(key, z0)
        return jax.lax.scan(lambda s, _: (sample_kernel(s), None), state, None, length=W)[0]

    states = _pooled_step_size(_map_chains(warm, method, keys, starts))
    out, step_size = _map_chains(_resumed(init, sample_kernel, d, dtype, S), method, states)
    return _sampler_stats(out, step_size)


def _go_on(potential, d: int, settings: SamplerSettings, dtype, states, done: int):
    """Static HMC's chains from ``states`` after ``done`` warmup iterations: the rest of the
    warmup, their step sizes pooled (:func:`_pooled_step_size`), and the draws, the step-size
    adaptation aiming at :meth:`SamplerSettings.adaptation_target`."""
    init, sample_kernel = _kernel(potential, d, settings, settings.adaptation_target())
    method = settings.resolved_chain_method()
    rest = _resumed(init, sample_kernel, d, dtype, settings.num_warmup - done, record=False)
    warmed = _pooled_step_size(_map_chains(rest, method, states))
    draw = _resumed(init, sample_kernel, d, dtype, settings.num_samples)
    out, step_size = _map_chains(draw, method, warmed)
    return _sampler_stats(out, step_size)


def _resumed(init, sample_kernel, d: int, dtype, length: int, *, record: bool = True):
    """One chain's ``length`` further iterations from a state an earlier scan left.

    numpyro's ``init`` runs first for the adaptation schedule that ``sample_kernel`` reads (its
    result is unused and compiled away). With ``record`` (the draws) it returns the recorded
    iterations and the step size they ran at, else the last state (more warmup)."""

    def run(state):
        init(jax.random.PRNGKey(0), jnp.zeros(d, dtype))
        step = _recorded(sample_kernel) if record else (lambda s, _: (sample_kernel(s), None))
        last, out = jax.lax.scan(step, state, None, length=length)
        return (out, last.adapt_state.step_size) if record else last

    return run


def _rewhitened(
    potential, d: int, rng_key, settings: SamplerSettings, dtype, draws, coordinates=None
):
    """Chains started afresh in coordinates ``v`` with ``z = m + L v`` whitened by ``draws``
    ``(C, n, d)`` of ``C`` chains (:func:`_pilot_whitening`), run with ``settings``; the draws
    are returned in ``z``. A linear map, so the posterior is unchanged.

    With ``coordinates`` (:class:`bayes_scaling.engine.sampler.RewhitenedCoordinates`) the
    whitening and the chains are in its coordinates ``y`` in place of ``z`` (its potential
    replaces ``potential``), and the draws are mapped back to ``z``."""
    if coordinates is not None:
        potential = coordinates.potential
        draws = jax.vmap(jax.vmap(coordinates.to_y))(draws)
    mean, factor = _pilot_whitening(draws, dtype)
    v, stats = _nuts(_moved(potential, mean, factor), d, rng_key, settings, dtype)
    y = mean + jnp.einsum("ij,csj->csi", factor, v)
    if coordinates is not None:
        y = jax.vmap(jax.vmap(coordinates.to_z))(y)
    return y, stats


def _moved(potential, mean, factor):
    """The potential of re-whitened coordinates ``v``, with ``z = mean + factor v``: an
    elementwise product and a sum, no dot call in the leapfrog loop."""
    return lambda v: potential(mean + (factor * v[None, :]).sum(1))


def _pilot_whitening(draws, dtype):
    """The mean and a lower-triangular factor ``L`` of the covariance of pilot draws
    ``(C, n, d)`` of ``C`` chains, its correlations shrunk by ``PILOT_SHRINK`` towards none
    (``L L^T`` then has the draws' variances on its diagonal and is positive definite).

    The covariance is the chains' pooled covariance about their own means. Chains read during
    warmup may not have met yet; their distance apart is not the posterior's width, and in the
    pooled covariance about the common mean it made a direction look wider than it is, so
    that the re-whitened chains had to take steps a fifth as long (six simulated groups,
    ``benchmarks/RESULTS.md``)."""
    C, n, d = draws.shape
    mean = draws.mean((0, 1))
    within = (draws - draws.mean(1, keepdims=True)).reshape(C * n, d)
    cov = within.T @ within / max(C * (n - 1), 1)
    sd = jnp.sqrt(jnp.maximum(jnp.diag(cov), jnp.finfo(dtype).tiny))
    corr = (1 - PILOT_SHRINK) * cov / (sd[:, None] * sd[None, :]) + PILOT_SHRINK * jnp.eye(
        d, dtype=dtype
    )
    return mean, sd[:, None] * jnp.linalg.cholesky(corr)


def _location_tie(draws, ties):
    """The largest size of a population location's correlation with one of its own groups'
    offsets in ``draws`` ``(n, d)``; ``ties`` holds (location position, offset positions)."""
    corr = jnp.corrcoef(draws.T)
    return jnp.max(jnp.stack([jnp.max(jnp.abs(corr[loc, offsets])) for loc, offsets in ties]))


def _correlation_condition(draws):
    """The ratio of the largest to the smallest eigenvalue of the correlation matrix of
    ``draws`` ``(n, d)``: how far a diagonal scale is from whitening them."""
    values = jnp.linalg.eigvalsh(jnp.corrcoef(draws.T))
    return values[-1] / jnp.maximum(values[0], jnp.finfo(values.dtype).tiny)


def _must_rewhiten(tie, condition, read_condition):
    """The choice half-way: re-whiten where a location is tied to its offsets beyond
    ``PILOT_TIE``, or, where the run reads the condition number too (``read_condition``, a
    boolean: :func:`bayes_scaling.engine.sampler.reads_condition`), where the draws'
    correlations are conditioned worse than ``PILOT_CONDITION``."""
    return (tie > PILOT_TIE) | (read_condition & (condition > PILOT_CONDITION))


def _gated(
    potential,
    d: int,
    rng_key,
    settings: SamplerSettings,
    dtype,
    ties,
    coordinates=None,
    read_condition=False,
):
    """``pilot="auto"``: static HMC's run, re-whitened half-way through warmup where it must be.

    The chains run the first half of the usual warmup (:meth:`SamplerSettings.gate_phases`);
    from their pooled draws of its last ``window`` iterations, where a population location's
    correlation with one of its own groups' offsets exceeds ``PILOT_TIE`` in size
    (:func:`_location_tie`), or, where it reads the condition number (``read_condition``),
    their correlation matrix's condition number exceeds ``PILOT_CONDITION``
    (:func:`_correlation_condition`), those draws whiten the coordinates
    as a pilot's would (:func:`_pilot_whitening`) and the chains start afresh there with 60%
    of ``num_warmup`` as warmup (as after :func:`_piloted`'s pilot). Otherwise the same
    chains go on with the rest of the warmup and the draws: the run is the one ``pilot=False``
    makes, draw for draw.
    Returns the draws and the statistics, with the correlation and the condition number the
    choice read (``pilot_correlation``, ``pilot_condition``) and whether it re-whitened
    (``pilot_rewhitened``). The chains that go on aim lower from the half where
    ``adapt_below_target`` says so (:func:`_go_on`), as in a run without the choice."""
    init, sample_kernel = _kernel(potential, d, settings)
    half, window = settings.gate_phases()
    method = settings.resolved_chain_method()
    keys, starts = _chain_starts(rng_key, settings, d, dtype)

    def first_half(key, z0):
        state = init(key, z0)
        state, out = jax.lax.scan(_recorded(sample_kernel), state, None, length=half)
        return state, out[0][half - window :]

    states, seen = _map_chains(first_half, method, keys, starts)
    tie = _location_tie(seen.reshape(-1, d), ties)
    condition = _correlation_condition(seen.reshape(-1, d))

    def go_on(_):
        return _go_on(potential, d, settings, dtype, states, half)

    def rewhitened(_):
        again = settings.rewhitened()
        key = jax.random.fold_in(rng_key, 1)
        return _rewhitened(potential, d, key, again, dtype, seen, coordinates)

    tied = _must_rewhiten(tie, condition, read_condition)
    z, stats = jax.lax.cond(tied, rewhitened, go_on, None)
    read = {"pilot_correlation": tie, "pilot_condition": condition, "pilot_rewhitened": tied}
    return z, {**stats, **read}


def _piloted(potential, d: int, rng_key, settings: SamplerSettings, dtype, coordinates=None):
    """``settings.pilot``: a pilot run, then the chains in coordinates ``v`` whitened by it.

    The pilot runs ``W1`` warmup iterations and keeps ``K1`` draws per chain
    (:meth:`SamplerSettings.pilot_phases`); the chains' pooled draws give ``z = m + L v``
    (:func:`_pilot_whitening`), and the chains start afresh in ``v`` (dispersed about the
    pilot's mean) for ``W2`` warmup iterations and the draws. A linear map, so the posterior is
    unchanged; the draws are returned in ``z``, as without a pilot, with the second run's
    statistics."""
    w1, k1, _ = settings.pilot_phases()
    first = dataclasses.replace(
        settings, num_warmup=w1, num_samples=k1, pilot=False, adapt_below_target=False
    )
    second = settings.rewhitened()
    key_pilot, key_draws = jax.random.split(rng_key)
    pilot_z, _ = _nuts(potential, d, key_pilot, first, dtype)
    return _rewhitened(potential, d, key_draws, second, dtype, pilot_z, coordinates)


def _chain_devices(num_chains: int) -> int:
    """How many local devices the chains split over: the most that divides them evenly."""
    devices = len(jax.local_devices())
    return max(k for k in range(1, min(devices, num_chains) + 1) if num_chains % k == 0)


def _parallel_chains(one_chain, *xs):
    """Chains split over the local devices with ``shard_map`` (sequential within a device).

    Each of ``xs`` is an array or a pytree of arrays (a sampler state) with the chains first."""
    from jax.sharding import Mesh
    from jax.sharding import PartitionSpec as P

    devices = jax.local_devices()
    n = _chain_devices(jax.tree.leaves(xs[0])[0].shape[0])
    if n == 1:
        return jax.lax.map(lambda a: one_chain(*a), xs)
    mesh = Mesh(np.array(devices[:n]), ("chain",))

    def block(*local):
        return jax.lax.map(lambda a: one_chain(*a), local)

    specs = tuple(P("chain") for _ in xs)
    return jax.shard_map(block, mesh=mesh, in_specs=specs, out_specs=P("chain"), check_vma=False)(
        *xs
    )
