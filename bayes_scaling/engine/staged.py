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
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayes_scaling.engine.chains import (
    _chain_starts,
    _kernel,
    _map_chains,
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
    plan = []
    for phase, total in (("warmup", num_warmup), ("sampling", num_samples)):
        plan += [(phase, min(length, total - i)) for i in range(0, total, length)]
    return length, plan


def _rebuilt(model, spec: ModelSpec, settings: SamplerSettings, args, rng_key, ctx):
    """The model's structure, potential and sampler coordinates for the data ``args``, with
    the whitening and centring found by ``start`` (``ctx``)."""
    info, unravel = _structure(model, args, jax.random.split(rng_key, 3)[0])
    potential = _potential(info, unravel, args)
    centring = _centring(spec, settings, "nuts", info, ctx["hessian"], ctx.get("information"))
    return info, unravel, potential, centring


def staged_programs(spec: ModelSpec, settings: SamplerSettings, prior_samples: int):
    """The un-jitted ``start``, ``chunk`` and ``finish`` programs of a staged NUTS fit.

    ``start(rng_key, x, y, group_index, mask, reference) -> (states, ctx, head)``;
    ``chunk(states, n, rng_key, x, y, group_index, mask, reference, ctx) -> (states, record)``
    runs ``n <= L`` iterations (``record``: per chain, ``L`` rows of which the first ``n`` are
    set); ``finish(z, rng_key, x, y, group_index, mask, reference, ctx) -> (samples, log_lik)``.
    """
    model = _counted(spec)
    target_site = f"log_{spec.law.target}"
    length, _ = chunk_plan(settings.num_warmup, settings.num_samples)
    method = settings.resolved_chain_method()

    def start(rng_key, x, y, group_index, mask, reference):
        args = (x, y, group_index, mask, reference)
        f = _setup(model, spec, settings, "nuts", prior_samples, args, rng_key)
        d = f["mode"].shape[0]
        potential_z = _whitened_potential(f["potential"], f["centring"], f["mode_w"], f["scale_w"])
        init, _ = _kernel(potential_z, d, settings)
        keys, starts = _chain_starts(f["k_fit"], settings, d, f["mode"].dtype)
        states = _map_chains(init, method, keys, starts)
        ctx = {"mode_w": f["mode_w"], "scale_w": f["scale_w"], "hessian": f["found"]["hessian"]}
        if f["information"] is not None:
            ctx["information"] = f["information"]
        return states, ctx, {"found": f["found"], "prior": f["prior"]}

    def chunk(states, n, rng_key, x, y, group_index, mask, reference, ctx):
        args = (x, y, group_index, mask, reference)
        _, _, potential, centring = _rebuilt(model, spec, settings, args, rng_key, ctx)
        potential_z = _whitened_potential(potential, centring, ctx["mode_w"], ctx["scale_w"])
        d = ctx["mode_w"].shape[0]
        init, sample_kernel = _kernel(potential_z, d, settings)
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

    def finish(z, rng_key, x, y, group_index, mask, reference, ctx):
        args = (x, y, group_index, mask, reference)
        info, unravel, _, centring = _rebuilt(model, spec, settings, args, rng_key, ctx)
        return _draws_out(
            model, info, unravel, args, centring, ctx["mode_w"], ctx["scale_w"], z, target_site
        )

    return start, chunk, finish


def compile_staged(spec: ModelSpec, settings: SamplerSettings, prior_samples: int, args):
    """The three programs compiled for the shapes of ``args`` (``rng_key, x, y, ...``)."""
    start, chunk, finish = staged_programs(spec, settings, prior_samples)
    traced_start = jax.jit(start).trace(*args)
    states, ctx, _ = traced_start.out_info
    n = jax.ShapeDtypeStruct((), jnp.int32)
    traced_chunk = jax.jit(chunk).trace(states, n, *args, ctx)
    z = jax.ShapeDtypeStruct(
        (settings.num_chains, settings.num_samples, ctx["mode_w"].shape[0]), states.z.dtype
    )
    traced_finish = jax.jit(finish).trace(z, *args, ctx)
    return tuple(t.lower().compile() for t in (traced_start, traced_chunk, traced_finish))


def _placed(program, *args):
    """``args`` on the devices a compiled program expects them on: with chains over several
    devices, the outputs of one stage are sharded across them and the next stage's inputs may
    not be."""
    return jax.device_put(args, tuple(program.input_shardings[0]))


def run_staged(programs, settings: SamplerSettings, args, prior_samples: int, progress: Progress):
    """Run compiled staged programs (:func:`compile_staged`) with a bar between chunks.

    Returns the output dict of the fused program (arrays on the host or the device).
    """
    start, chunk, finish = programs
    with progress.phase("finding the posterior mode and starting the chains"):
        states, ctx, head = jax.block_until_ready(start(*args))
    _, plan = chunk_plan(settings.num_warmup, settings.num_samples)
    kept: list[Any] = []
    progress.start_bar(settings.num_warmup + settings.num_samples)
    for phase, n in plan:
        if phase == "sampling" and not kept and settings.static_length() is not None:
            states = _pooled_step_size(states)  # as the fused program does after warmup
        states, record = chunk(*_placed(chunk, states, jnp.asarray(n, jnp.int32), *args, ctx))
        if phase == "sampling":
            kept.append(jax.tree.map(lambda a, n=n: np.asarray(a)[:, :n], record))
        else:
            jax.block_until_ready(states)
        progress.advance(phase, n)
    out = tuple(np.concatenate([k[i] for k in kept], axis=1) for i in range(len(kept[0])))
    z, stats = _sampler_stats(out, np.asarray(states.adapt_state.step_size))
    with progress.phase("computing the outputs"):
        samples, log_lik = jax.block_until_ready(finish(*_placed(finish, z, *args, ctx)))
    return _result(samples, stats, log_lik, head["found"], head["prior"], prior_samples)
