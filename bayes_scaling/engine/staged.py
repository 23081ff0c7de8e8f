"""A NUTS fit run in stages, so that progress can be shown while it runs.

The fused program (:func:`bayes_scaling.engine.program`) does the whole fit in one compiled
call, which leaves nothing to report until it returns. Here the same computation is split into
three compiled programs:

1. ``start``: prior draws, mode, whitening and centring, and numpyro's initial NUTS state of
   every chain (everything before the first NUTS iteration);
2. ``chunk``: up to ``L`` NUTS iterations of every chain from a given state (the number is an
   argument, so one program serves every chunk), recording what the fused program records
   (static HMC pools the chains' step sizes between warmup and sampling, as the fused program
   does);
3. ``finish``: the kept draws mapped to the model's sites and the pointwise log likelihood.

The host calls ``chunk`` about ``NUM_CHUNKS`` times and shows a bar between calls. Each chunk
runs the same kernel from the same state with the same keys as the fused program's one scan,
so the draws are those of the fused program (equal to float tolerance: XLA compiles the kernel
into different programs, which may round differently). Between chunks the state stays on the
device; per chunk the host waits for the chunk and copies its kept draws, a few milliseconds.

A grouped run's choice half-way through warmup (``SamplerSettings(pilot="auto")``) is made by
the host here: the chunks stop at the half, a small ``gate`` program reads the chains' draws of
its last iterations, and the host either goes on with the same chunks (the run ``pilot=False``
makes) or compiles the re-whitened chains' own ``restart`` and ``chunk`` programs and runs them.
So only the branch that runs is compiled, and the bar runs through both.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayes_scaling.engine.centring import _location_ties
from bayes_scaling.engine.chains import (
    _chain_starts,
    _correlation_condition,
    _kernel,
    _location_tie,
    _map_chains,
    _moved,
    _must_rewhiten,
    _pilot_whitening,
    _pooled_step_size,
    _recorded,
    _sampler_stats,
)
from bayes_scaling.engine.progress import Progress
from bayes_scaling.engine.sampler import (
    _centring,
    _counted,
    _draws_out,
    _potential,
    _result,
    _setup,
    _structure,
    _whitened_potential,
    reads_condition,
    rewhitened_coordinates,
)
from bayes_scaling.engine.settings import SamplerSettings
from bayes_scaling.models import ModelSpec

NUM_CHUNKS = 20  # NUTS runs in about this many compiled calls, with a progress update after each


def chunk_plan(num_warmup: int, num_samples: int) -> tuple[int, list[tuple[str, int]]]:
    """The chunk length ``L`` and the chunks as ``(phase, iterations)``, none across phases.

    Examples
    --------
    >>> chunk_plan(100, 50)
    (8, [('warmup', 8), ('warmup', 8), ('warmup', 8), ('warmup', 8), ('warmup', 8), \
('warmup', 8), ('warmup', 8), ('warmup', 8), ('warmup', 8), ('warmup', 8), ('warmup', 8), \
('warmup', 8), ('warmup', 4), ('sampling', 8), ('sampling', 8), ('sampling', 8), \
('sampling', 8), ('sampling', 8), ('sampling', 8), ('sampling', 2)])
    """
    length = max(1, math.ceil((num_warmup + num_samples) / NUM_CHUNKS))
    return length, _chunks(length, [("warmup", num_warmup), ("sampling", num_samples)])


def _chunks(length: int, segments) -> list[tuple[str, int]]:
    """Chunks of at most ``length`` iterations over ``segments`` ``(phase, iterations)``, none
    across two segments."""
    plan = []
    for phase, total in segments:
        plan += [(phase, min(length, total - i)) for i in range(0, total, length)]
    return plan


def _rebuilt(model, spec: ModelSpec, settings: SamplerSettings, args, rng_key, ctx):
    """The model's structure, potential and sampler coordinates for the data ``args``, with
    the whitening and centring found by ``start`` (``ctx``)."""
    info, unravel = _structure(model, args, jax.random.split(rng_key, 3)[0])
    potential = _potential(info, unravel, args)
    centring = _centring(
        spec,
        settings,
        "nuts",
        info,
        ctx["hessian"],
        ctx.get("information"),
        ctx.get("power"),
        ctx.get("centred"),
    )
    return info, unravel, potential, centring


def gates(settings: SamplerSettings) -> bool:
    """Whether a staged run with ``settings`` (resolved) makes the choice half-way."""
    return settings.pilot == "auto" and settings.static_length() is not None


def _potential_z(model, spec: ModelSpec, settings: SamplerSettings, args, rng_key, ctx):
    """The potential of the whitened sampler coordinates ``z`` that ``start`` set up (``ctx``)."""
    _, _, potential, centring = _rebuilt(model, spec, settings, args, rng_key, ctx)
    return _whitened_potential(potential, centring, ctx["mode_w"], ctx["scale_w"])


def _rewhitened_potential(model, spec: ModelSpec, settings: SamplerSettings, args, rng_key, ctx):
    """The potential the re-whitened chains move in, before their whitening by the draws, and
    the map of the first run's ``z`` to its coordinates and back (None where they are ``z``:
    :func:`bayes_scaling.engine.sampler.rewhitened_coordinates`)."""
    _, _, potential, centring = _rebuilt(model, spec, settings, args, rng_key, ctx)
    coordinates = rewhitened_coordinates(
        settings, potential, centring, ctx["mode_w"], ctx["scale_w"]
    )
    if coordinates is None:
        return _whitened_potential(potential, centring, ctx["mode_w"], ctx["scale_w"]), None
    return coordinates.potential, coordinates


def _chunk_program(model, spec: ModelSpec, settings: SamplerSettings, kernel: SamplerSettings):
    """``chunk(states, n, rng_key, x, y, group_index, mask, reference, ctx, moves=None)``: up to
    ``L`` iterations of the kernel that ``kernel`` sets up, in ``z`` or, given ``moves``, in
    re-whitened coordinates, its step-size adaptation aiming at ``ctx["target"]`` (an
    argument, so that the run can change it between chunks without compiling again)."""
    length, _ = chunk_plan(settings.num_warmup, settings.num_samples)
    method = settings.resolved_chain_method()

    def chunk(states, n, rng_key, x, y, group_index, mask, reference, ctx, moves=None):
        args = (x, y, group_index, mask, reference)
        if moves is None:
            potential = _potential_z(model, spec, settings, args, rng_key, ctx)
        else:
            potential = _rewhitened_potential(model, spec, settings, args, rng_key, ctx)[0]
            potential = _moved(potential, moves["mean"], moves["factor"])
        d = ctx["mode_w"].shape[0]
        init, sample_kernel = _kernel(potential, d, kernel, ctx["target"])
        # sets numpyro's adaptation schedule for sample_kernel; the state itself is unused
        init(jax.random.PRNGKey(0), jnp.zeros(d, ctx["mode_w"].dtype))
        step = _recorded(sample_kernel)

        def one_chain(state):
            shapes = jax.eval_shape(lambda s: step(s, None)[1], state)
            record = jax.tree.map(lambda a: jnp.zeros((length, *a.shape), a.dtype), shapes)

            def body(i, carry):
                s, rec = step(carry[0], None)
                return s, jax.tree.map(lambda buf, r: buf.at[i].set(r), carry[1], rec)

            return jax.lax.fori_loop(0, n, body, (state, record))

        return _map_chains(one_chain, method, states)

    return chunk


def _choice_programs(model, spec: ModelSpec, settings: SamplerSettings) -> dict[str, Any]:
    """The programs of the choice half-way: ``gate``, ``restart``, ``chunk_again`` and ``back`` (see
    :func:`staged_programs`)."""
    method = settings.resolved_chain_method()
    again = settings.rewhitened()

    def gate(seen, rng_key, x, y, group_index, mask, reference):
        args = (x, y, group_index, mask, reference)
        info, _ = _structure(model, args, jax.random.split(rng_key, 3)[0])
        return _location_tie(seen, _location_ties(spec, info)), _correlation_condition(seen)

    def restart(seen, rng_key, x, y, group_index, mask, reference, ctx):
        args = (x, y, group_index, mask, reference)
        d, dtype = ctx["mode_w"].shape[0], ctx["mode_w"].dtype
        potential, coordinates = _rewhitened_potential(model, spec, settings, args, rng_key, ctx)
        if coordinates is not None:
            seen = jax.vmap(jax.vmap(coordinates.to_y))(seen)
        mean, factor = _pilot_whitening(seen, dtype)
        moves = {"mean": mean, "factor": factor}
        init, _ = _kernel(_moved(potential, mean, factor), d, again)
        keys, starts = _chain_starts(jax.random.fold_in(ctx["k_fit"], 1), again, d, dtype)
        return _map_chains(init, method, keys, starts), moves

    def back(draws, rng_key, x, y, group_index, mask, reference, ctx):
        args = (x, y, group_index, mask, reference)
        coordinates = _rewhitened_potential(model, spec, settings, args, rng_key, ctx)[1]
        if coordinates is None:
            return draws
        return jax.vmap(jax.vmap(coordinates.to_z))(draws)

    chunk_again = _chunk_program(model, spec, settings, again)
    return {"gate": gate, "restart": restart, "chunk_again": chunk_again, "back": back}


def staged_programs(spec: ModelSpec, settings: SamplerSettings, prior_samples: int):
    """The un-jitted programs of a staged NUTS fit, by name.

    ``start(rng_key, x, y, group_index, mask, reference) -> (states, ctx, head)``;
    ``chunk(states, n, rng_key, x, y, group_index, mask, reference, ctx) -> (states, record)``
    runs ``n <= L`` iterations (``record``: per chain, ``L`` rows of which the first ``n`` are
    set); ``finish(z, rng_key, x, y, group_index, mask, reference, ctx) -> (samples, log_lik)``.
    For the choice half-way (:func:`gates`) also ``gate(seen, rng_key, x, ...) -> correlation``
    (the size of a location's largest correlation with its own offsets in the draws ``seen``,
    ``(n, d)``), ``restart(seen, rng_key, x, ..., ctx) -> (states, moves)`` (the chains started
    afresh in coordinates ``v`` whitened by the same draws per chain, ``seen`` ``(C, n, d)``:
    ``z = moves["mean"] + moves["factor"] v``)
    and ``chunk_again(states, n, rng_key, x, ..., ctx, moves)``, the re-whitened chains' chunk,
    with ``back(y, rng_key, x, ..., ctx)``, which maps their draws (``moves["mean"] +
    moves["factor"] v``) back to ``z`` where they move in coordinates of their own
    (:func:`bayes_scaling.engine.sampler.rewhitened_coordinates`).
    """
    model = _counted(spec)
    target_site = f"log_{spec.law.target}"
    method = settings.resolved_chain_method()

    def start(rng_key, x, y, group_index, mask, reference):
        args = (x, y, group_index, mask, reference)
        f = _setup(model, spec, settings, "nuts", prior_samples, args, rng_key)
        d = f["mode"].shape[0]
        potential_z = _whitened_potential(f["potential"], f["centring"], f["mode_w"], f["scale_w"])
        init, _ = _kernel(potential_z, d, settings)
        keys, starts = _chain_starts(f["k_fit"], settings, d, f["mode"].dtype)
        states = _map_chains(init, method, keys, starts)
        ctx = {
            "mode_w": f["mode_w"],
            "scale_w": f["scale_w"],
            "hessian": f["found"]["hessian"],
            "k_fit": f["k_fit"],
            # the first half's aim; run_staged lowers it half-way (adapt_below_target)
            "target": jnp.asarray(settings.target_accept_prob, f["mode"].dtype),
        }
        if f["information"] is not None:
            ctx["information"] = f["information"]
        if f["offset_power"] is not None:
            ctx["power"] = f["offset_power"]
        if f["centred"] is not None:
            ctx["centred"] = f["centred"]
            ctx["read_condition"] = jnp.asarray(reads_condition(spec, f["centred"]))
        return states, ctx, {"found": f["found"], "prior": f["prior"]}

    def finish(z, rng_key, x, y, group_index, mask, reference, ctx):
        args = (x, y, group_index, mask, reference)
        info, unravel, _, centring = _rebuilt(model, spec, settings, args, rng_key, ctx)
        return _draws_out(
            model, info, unravel, args, centring, ctx["mode_w"], ctx["scale_w"], z, target_site
        )

    chunk = _chunk_program(model, spec, settings, settings)
    return {
        "start": start,
        "chunk": chunk,
        "finish": finish,
        **_choice_programs(model, spec, settings),
    }


class StagedPrograms:
    """The compiled programs of a staged fit (:func:`compile_staged`); the re-whitened chains'
    ``restart`` and ``chunk_again`` are compiled when a run first needs them."""

    def __init__(self, functions: dict[str, Any], compiled: dict[str, Any]) -> None:
        self._functions = functions
        self._compiled = compiled

    def get(self, name: str, *args):
        """The compiled program ``name``, compiled now for ``args`` if it has not been."""
        if name not in self._compiled:
            self._compiled[name] = jax.jit(self._functions[name]).trace(*args).lower().compile()
        return self._compiled[name]

    def __contains__(self, name: str) -> bool:
        """Whether the program ``name`` has been compiled."""
        return name in self._compiled

    def __iter__(self):  # start, chunk, finish
        return iter([self._compiled[k] for k in ("start", "chunk", "finish")])


def compile_staged(spec: ModelSpec, settings: SamplerSettings, prior_samples: int, args):
    """The programs compiled for the shapes of ``args`` (``rng_key, x, y, ...``): ``start``,
    ``chunk`` and ``finish``. They do not depend on ``settings.pilot``: a run that makes the
    choice half-way compiles its ``gate`` (a fraction of a second) and, where it re-whitens,
    the re-whitened chains' programs when it gets there."""
    functions = staged_programs(spec, settings, prior_samples)
    traced_start = jax.jit(functions["start"]).trace(*args)
    states, ctx, _ = traced_start.out_info
    n = jax.ShapeDtypeStruct((), jnp.int32)
    traced = {
        "start": traced_start,
        "chunk": jax.jit(functions["chunk"]).trace(states, n, *args, ctx),
    }
    d = ctx["mode_w"].shape[0]
    z = jax.ShapeDtypeStruct((settings.num_chains, settings.num_samples, d), states.z.dtype)
    traced["finish"] = jax.jit(functions["finish"]).trace(z, *args, ctx)
    return StagedPrograms(functions, {k: t.lower().compile() for k, t in traced.items()})


def _placed(program, *args):
    """``args`` on the devices a compiled program expects them on: with chains over several
    devices, the outputs of one stage are sharded across them and the next stage's inputs may
    not be."""
    return jax.device_put(args, tuple(program.input_shardings[0]))


def _choice(programs: StagedPrograms, per_chain, args, ctx) -> dict[str, np.ndarray]:
    """The choice half-way, read by the ``gate`` program from the chains' draws ``(chains,
    draws, d)``: the figures it read and whether to re-whiten, as the statistics record them."""
    read_condition = bool(np.asarray(ctx.get("read_condition", False)))
    draws = per_chain.reshape(-1, per_chain.shape[-1])
    gate = programs.get("gate", draws, *args)
    tie, condition = (np.asarray(v) for v in gate(*_placed(gate, draws, *args)))
    return {
        "pilot_correlation": tie,
        "pilot_condition": condition,
        "pilot_rewhitened": np.asarray(_must_rewhiten(tie, condition, read_condition)),
    }


def _run_plan(settings: SamplerSettings) -> tuple[int, list[tuple[str, int]]]:
    """:func:`chunk_plan` with the chunks stopped half-way through warmup where the run looks
    at its draws there (``"read"``: the last ``window`` iterations before the half, :func:`gates`)
    or where its chains aim lower from there (:meth:`SamplerSettings.adaptation_target`)."""
    W, S = settings.num_warmup, settings.num_samples
    length, plan = chunk_plan(W, S)
    half, window = settings.gate_phases()
    if gates(settings):
        segments = [("warmup", half - window), ("read", window), ("warmup", W - half)]
        return length, _chunks(length, [*segments, ("sampling", S)])
    if settings.adaptation_target() != settings.target_accept_prob:
        return length, _chunks(length, [("warmup", half), ("warmup", W - half), ("sampling", S)])
    return length, plan


def run_staged(
    programs: StagedPrograms,
    settings: SamplerSettings,
    args,
    prior_samples: int,
    progress: Progress,
):
    """Run compiled staged programs (:func:`compile_staged`) with a bar between chunks.

    With the choice half-way (:func:`gates`), the chunks stop after half of the warmup, the
    ``gate`` program reads the draws of its last iterations, and where a location is tied to
    its offsets (beyond ``PILOT_TIE``) or, where it reads them
    (:func:`bayes_scaling.engine.sampler.reads_condition`), the draws are ill-conditioned
    (beyond ``PILOT_CONDITION``) the chains start afresh in re-whitened coordinates
    (``restart``, ``chunk_again``) for the rest; the draws come back in the
    sampler's usual coordinates, with ``pilot_correlation``, ``pilot_condition`` and
    ``pilot_rewhitened`` in the statistics, as from the fused program.

    Returns the output dict of the fused program (arrays on the host or the device).
    """
    start, chunk, finish = programs
    with progress.phase("finding the posterior mode and starting the chains"):
        states, ctx, head = jax.block_until_ready(start(*args))
    W, S = settings.num_warmup, settings.num_samples
    length, plan = _run_plan(settings)
    half = settings.gate_phases()[0]
    lower = settings.adaptation_target()
    kept: list[Any] = []
    seen: list[np.ndarray] = []
    moves: tuple[Any, ...] = ()
    extra: dict[str, Any] = {}
    progress.start_bar(W + S)
    i = ran = 0
    while i < len(plan):
        phase, n = plan[i]
        i += 1
        if phase == "sampling" and not kept and settings.static_length() is not None:
            states = _pooled_step_size(states)  # as the fused program does after warmup
        if ran == half and not moves and lower != settings.target_accept_prob:
            ctx = {**ctx, "target": jnp.asarray(lower, ctx["target"].dtype)}  # as _go_on does
        n_arg = jnp.asarray(n, jnp.int32)
        states, record = chunk(*_placed(chunk, states, n_arg, *args, ctx, *moves))
        ran += n
        if phase == "sampling":
            kept.append(jax.tree.map(lambda a, n=n: np.asarray(a)[:, :n], record))
        elif phase == "read":
            seen.append(np.asarray(record[0])[:, :n])
        else:
            jax.block_until_ready(states)
        progress.advance("warmup" if phase == "read" else phase, n)
        if phase == "read" and (i == len(plan) or plan[i][0] != "read"):
            per_chain = np.concatenate(seen, axis=1)  # (chains, draws, d)
            extra = _choice(programs, per_chain, args, ctx)
            if extra["pilot_rewhitened"]:
                again = settings.rewhitened()
                compiling = "" if "chunk_again" in programs else " (compiling its programs)"
                with progress.phase(f"re-whitening by the chains' draws{compiling}"):
                    restart = programs.get("restart", per_chain, *args, ctx)
                    states, moved = restart(*_placed(restart, per_chain, *args, ctx))
                    chunk = programs.get("chunk_again", states, n_arg, *args, ctx, moved)
                moves = (moved,)
                ctx = {**ctx, "target": jnp.asarray(again.target_accept_prob, ctx["target"].dtype)}
                plan = plan[:i] + _chunks(length, [("warmup", again.num_warmup), ("sampling", S)])
                progress.retotal(progress.done + again.num_warmup + S)
    out = tuple(np.concatenate([k[i] for k in kept], axis=1) for i in range(len(kept[0])))
    z, stats = _sampler_stats(out, np.asarray(states.adapt_state.step_size))
    if moves:
        mean, factor = (np.asarray(moves[0][k]) for k in ("mean", "factor"))
        y = mean + np.einsum("ij,csj->csi", factor, z)
        back = programs.get("back", y, *args, ctx)
        z = np.asarray(back(*_placed(back, y, *args, ctx)))
    stats.update(extra)
    if "power" in ctx:
        stats["offset_scaling"] = np.asarray(ctx["power"])
    with progress.phase("computing the outputs"):
        samples, log_lik = jax.block_until_ready(finish(*_placed(finish, z, *args, ctx)))
    return _result(samples, stats, log_lik, head["found"], head["prior"], prior_samples)
