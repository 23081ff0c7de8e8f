"""Running the compiled programs: one fit, or many data sets in one vectorised call."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from bayes_scaling.engine.chains import _chain_devices
from bayes_scaling.engine.programs import _PROGRAMS, _from_program_file, _remember, compiled
from bayes_scaling.engine.progress import Progress
from bayes_scaling.engine.sampler import joint_program, program
from bayes_scaling.engine.settings import (
    BATCHINGS,
    GROUPED_TRAJECTORY_LENGTH,
    PILOT_MIN_GROUPS,
    GroupBlocks,
    SamplerSettings,
    bucket_size,
    group_blocks,
    pad_inputs,
)
from bayes_scaling.engine.staged import compile_staged, run_staged
from bayes_scaling.models import ModelSpec


def run_fit(
    spec: ModelSpec,
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    group_index: np.ndarray | None,
    rng_key: jax.Array,
    settings: SamplerSettings | None = None,
    *,
    prior_samples: int = 500,
    method: str = "nuts",
    pad_to: int | None = None,
) -> dict[str, Any]:
    """Fit one data set: pad, run the compiled program, return numpy arrays cut to ``n`` points.

    ``pad_to`` pads to the bucket of ``max(n, pad_to)`` rows, so that fits of subsets of one
    data set (the leave-future-out fits of a discrepancy calibration) share one program.
    Grouped NUTS fits run their chains over the local devices when there are several (host
    devices on a CPU, as ``import bayes_scaling`` and the command line ask for): their
    sampling, not compilation, is what takes the time.
    """
    settings = SamplerSettings() if settings is None else settings
    settings = resolve_settings(spec, settings, method)
    n = int(np.shape(y)[0])
    reference = {k: np.float32(v) for k, v in spec.reference_map.items()}
    if spec.num_groups and group_index is not None:
        # grouped: the rows in one block per group (the model then needs no gather)
        blocks = group_blocks(x, y, group_index, spec.num_groups, pad_to)
        size = blocks.y.shape[0]
        args: tuple[Any, ...] = (rng_key, blocks.x, blocks.y, None, blocks.mask, reference)
        put_back = functools.partial(_from_blocks, blocks=blocks, spec=spec)
    else:
        size = bucket_size(max(n, int(pad_to or 0)))
        xp, yp, gp, mask = pad_inputs(x, y, group_index, size)
        args = (rng_key, xp, yp, gp, mask, reference)
        put_back = functools.partial(_cut, n=n, spec=spec)
    if settings.progress_bar or _chooses_half_way(settings, method):
        # a run that chooses half-way runs in stages, shown or not: the stages compile only the
        # branch it takes (the fused program compiles both)
        out = _run_in_stages(spec, args, settings, prior_samples, method)
        return put_back(jax.device_get(out))
    fn = _from_program_file(spec, args, settings, prior_samples, method)
    if fn is None:
        fn = compiled(spec, size, settings, prior_samples, method)
    return put_back(jax.device_get(fn(*args)))


def resolve_settings(spec: ModelSpec, settings: SamplerSettings, method: str) -> SamplerSettings:
    """``settings`` with what is left open resolved: a grouped fit's chains run in parallel on
    several devices, and ``trajectory_length="auto"`` is jittered static HMC of length
    ``GROUPED_TRAJECTORY_LENGTH`` for a grouped fit, NUTS for one curve; ``whitening="auto"`` is
    ``"locations"`` for a grouped fit, full otherwise; ``adapt_below_target="auto"`` is True for
    a grouped fit's static HMC, False otherwise; ``pilot="auto"`` stays where the run can
    choose half-way whether to re-whiten (:func:`_gates`) and is False elsewhere."""
    grouped = method == "nuts" and bool(spec.num_groups)
    if settings.trajectory_length == "auto":
        length = GROUPED_TRAJECTORY_LENGTH if grouped else None
        settings = dataclasses.replace(settings, trajectory_length=length)
    if settings.whitening == "auto":
        settings = dataclasses.replace(settings, whitening="locations" if grouped else "full")
    if settings.adapt_below_target == "auto":
        below = grouped and settings.static_length() is not None
        settings = dataclasses.replace(settings, adapt_below_target=below)
    if settings.pilot == "auto" and not _gates(spec, settings, grouped):
        settings = dataclasses.replace(settings, pilot=False)
    if settings.chain_method is None and grouped and _chain_devices(settings.num_chains) > 1:
        return dataclasses.replace(settings, chain_method="parallel")
    return settings


def _gates(spec: ModelSpec, settings: SamplerSettings, grouped: bool) -> bool:
    """Whether ``pilot="auto"`` applies: a grouped static-HMC run with at least
    ``PILOT_MIN_GROUPS`` groups and pooled parameters, whose chains' draws read half-way
    through warmup number at least two per group offset."""
    pooled = sum(mode == "pooled" for mode in spec.pooling_map.values())
    offsets = pooled * spec.num_groups
    draws = settings.num_chains * settings.gate_phases()[1]
    return (
        grouped
        and settings.static_length() is not None
        and spec.num_groups >= PILOT_MIN_GROUPS
        and 0 < offsets <= draws / 2
    )


def _chooses_half_way(settings: SamplerSettings, method: str) -> bool:
    """Whether a resolved run chooses half-way through warmup whether to re-whiten."""
    return method == "nuts" and settings.pilot == "auto"


def _cut(out: dict[str, Any], n: int, spec: ModelSpec) -> dict[str, Any]:
    """The outputs with the padded rows dropped from the pointwise arrays."""
    out["log_likelihood"] = np.asarray(out["log_likelihood"])[..., :n]
    if "prior" in out:
        site = f"log_{spec.law.target}"
        out["prior"][site] = np.asarray(out["prior"][site])[..., :n]
    return out


def _from_blocks(out: dict[str, Any], blocks: GroupBlocks, spec: ModelSpec) -> dict[str, Any]:
    """The outputs of a run in the block layout with the pointwise arrays in the data's order."""
    out["log_likelihood"] = blocks.pointwise(out["log_likelihood"])
    if "prior" in out:
        site = f"log_{spec.law.target}"
        out["prior"][site] = blocks.pointwise(out["prior"][site])
    return out


def _run_in_stages(spec, args, settings, prior_samples, method):
    """The fit in stages, with progress on stderr where ``settings.progress_bar`` asks (else
    the same stages, silent): NUTS in stages with a bar between compiled chunks
    (:mod:`bayes_scaling.engine.staged`; a grouped run's choice half-way is made between
    them); Laplace draws, and NUTS with a pilot run (``SamplerSettings(pilot=True)``), as the
    fused program with phase messages."""
    progress = Progress(enabled=settings.progress_bar)
    staged = method == "nuts" and settings.pilot is not True  # a pilot's runs: one program
    size = int(np.shape(args[2])[0])
    # the staged programs are those of pilot=False; the choice half-way adds its own on the way
    compile_key = dataclasses.replace(settings, pilot=False).compile_key() if staged else None
    key = (
        "staged" if staged else "executable",
        spec.structure,
        size,
        compile_key or settings.compile_key(),
        int(prior_samples),
        method,
    )
    programs = _PROGRAMS.get(key)
    if programs is None:
        with progress.phase("compiling the fitting program"):
            if staged:
                programs = compile_staged(spec, settings, prior_samples, args)
            else:
                fn = _from_program_file(spec, args, settings, prior_samples, method)
                if fn is None:
                    fn = compiled(spec, size, settings, prior_samples, method)
                programs = fn.trace(*args).lower().compile()
        _remember(key, programs)
    if staged:
        return run_staged(programs, settings, args, prior_samples, progress)
    doing = {
        "laplace": "drawing from the Laplace approximation",
        True: "sampling (a pilot run, then the chains)",
    }["laplace" if method != "nuts" else settings.pilot]
    with progress.phase(doing):
        return jax.block_until_ready(programs(*args))


def run_many(
    spec: ModelSpec,
    xs: list[Mapping[str, np.ndarray]],
    ys: list[np.ndarray],
    references: list[Mapping[str, float]],
    rng_key: jax.Array,
    settings: SamplerSettings | None = None,
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
    settings = SamplerSettings() if settings is None else settings
    if settings.pilot == "auto":
        # many sets in one program: no choice half-way (under vmap a cond runs both branches)
        settings = dataclasses.replace(settings, pilot=False)
    if settings.static_length() is not None:
        # sets in lockstep wait for the longest trajectory of each iteration: one schedule
        # of lengths for all of them (SamplerSettings.shared_jitter)
        settings = dataclasses.replace(settings, shared_jitter=True)
    if batching not in BATCHINGS:
        raise ValueError(f"batching must be one of {', '.join(BATCHINGS)}; got {batching!r}")
    if not xs:
        raise ValueError("fit_many needs at least one data set")
    sizes = [int(np.shape(y)[0]) for y in ys]
    size = bucket_size(max(sizes))
    padded = [pad_inputs(x, y, None, size) for x, y in zip(xs, ys, strict=True)]
    x = {k: np.stack([p[0][k] for p in padded]) for k in padded[0][0]}
    y = np.stack([p[1] for p in padded])
    mask = np.stack([p[3] for p in padded])
    reference = {k: np.asarray([r[k] for r in references], np.float32) for k in references[0]}
    if batching == "joint" and method == "nuts":
        return _split_outputs(
            _run_joint(spec, x, y, mask, reference, rng_key, settings, prior_samples), sizes, spec
        )
    keys = jax.random.split(rng_key, len(ys))
    # the sets are split over the local devices (host devices on CPU, as bayes_scaling._devices
    # asks for); the set count is padded to a multiple of the device count by repeating the
    # last set, whose extra results are dropped
    devices = jax.local_devices()[: len(ys)]
    per_device = math.ceil(len(ys) / len(devices))
    total = per_device * len(devices)
    if total > len(ys):
        extend = lambda a: np.concatenate([a, np.repeat(a[-1:], total - len(ys), axis=0)])  # noqa: E731
        keys = jax.numpy.asarray(extend(np.asarray(keys)))
        x, y, mask = {k: extend(v) for k, v in x.items()}, extend(y), extend(mask)
        reference = {k: extend(v) for k, v in reference.items()}
    cache_key = (
        "many",
        spec.structure,
        size,
        total,
        len(devices),
        settings.compile_key(),
        int(prior_samples),
        method,
    )
    fn = _PROGRAMS.get(cache_key)
    if fn is None:
        one = program(spec, settings, prior_samples, method)
        batched = jax.vmap(lambda k, xx, yy, mm, rr: one(k, xx, yy, None, mm, rr))
        if len(devices) > 1:
            from jax.sharding import Mesh
            from jax.sharding import PartitionSpec as P

            mesh = Mesh(np.array(devices), ("sets",))
            batched = jax.shard_map(
                batched, mesh=mesh, in_specs=P("sets"), out_specs=P("sets"), check_vma=False
            )
        fn = jax.jit(batched)
        _remember(cache_key, fn)
    return _split_outputs(jax.device_get(fn(keys, x, y, mask, reference)), sizes, spec)


def _run_joint(spec, x, y, mask, reference, rng_key, settings, prior_samples):
    K, size = y.shape
    devices = jax.local_devices()
    if settings.chain_method is None:
        # chains over the local devices when there are several (host devices on a CPU)
        parallel = _chain_devices(settings.num_chains) > 1
        settings = dataclasses.replace(
            settings, chain_method="parallel" if parallel else settings.resolved_chain_method()
        )
    cache_key = (
        "joint",
        spec.structure,
        size,
        K,
        len(devices),
        settings.compile_key(),
        int(prior_samples),
    )
    fn = _PROGRAMS.get(cache_key)
    if fn is None:
        fn = jax.jit(joint_program(spec, settings, prior_samples))
        _remember(cache_key, fn)
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
