"""Sampler settings and the padding of data to bucketed sizes."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import jax
import numpy as np

GROUPED_TRAJECTORY_LENGTH = 3.0  # "auto" for hierarchical fits; see SamplerSettings
MANY_TRAJECTORY_LENGTH = 3.0  # "auto" in fit_many, with NUTS for the sets it leaves unconverged
WHITENINGS = ("auto", "full", "diagonal", "locations")
CHAIN_METHODS = ("sequential", "vectorized", "parallel")
DENSE_MASS_MAX_DIM = 16
# partial centring needs the population scale pinned down by the groups; with fewer, the
# posterior of sigma is wide, the best parametrisation changes across it, and the non-centred
# form is the safer one (3 Porian groups: 0 divergences non-centred, 40-160 partially centred)
CENTRING_MIN_GROUPS = 10
# SamplerSettings.mean_centred_above: only from 3 up to 10 groups (30 simulated groups of 24
# runs each mixed worse centred, R-hat 1.03 and ESS 268 against 1.01 and 472; two simulated
# groups gained a sixth of the time on one seed and fell under 1,000 ESS on another:
# benchmarks/RESULTS.md)
MEAN_CENTRING_MIN_GROUPS = 3
MEAN_CENTRING_MAX_GROUPS = 10
METHODS = ("nuts", "laplace")
BATCHINGS = ("vmap", "joint")

TRACE_COUNTS: dict[str, int] = {}  # model traces per law name; read by tests

# chains start from independent draws of the Laplace approximation (scaled by START_SCALE):
# dispersed starts, so that R-hat can flag chains that end in different regions
START_SCALE = 1.0
# SamplerSettings.pilot: the pilot's correlations are shrunk this far towards none, so that a
# pilot of a few hundred draws cannot make the whitening singular
PILOT_SHRINK = 0.1
# SamplerSettings(pilot="auto"): a grouped run re-whitens half-way through warmup only where
# some population location's correlation with one of its groups' offsets is beyond this in size
# in the chains' draws so far (0.92 to 0.97 on 2 to 15 simulated and Porian groups, where the
# pilot halved the time; 0.64 to 0.71 on gadre's three corpora, where re-whitening cost time and
# ESS: benchmarks/RESULTS.md, benchmarks/probe_gate.py)
PILOT_TIE = 0.85
# and only from this many groups (on two simulated groups the re-whitened run mixed worse on
# two seeds of three), with at least two of those draws per group offset
PILOT_MIN_GROUPS = 3
# SamplerSettings(pilot="auto") also re-whitens where the chains' draws so far are
# ill-conditioned as a whole: the ratio of the largest to the smallest eigenvalue of their
# correlation matrix beyond this. Centred coordinates (``mean_centred_above``) remove the
# location's tie by construction, yet each group's values still carry one curve's ridge, which
# a diagonal scale leaves to the step size: 260-630 on 6 and 10 simulated groups, where
# re-whitening took 1.5-2x off the time; 74-108 on gadre's three corpora, where a forced
# re-whitening lost ESS (benchmarks/RESULTS.md)
PILOT_CONDITION = 150.0
# that figure is read only where some pooled parameter moves centred about its groups' mean,
# from four groups: with three, the re-whitened chains of three simulated groups fell under
# the ESS bar (890 against 1,574) and a calibration refit of gadre's corpora (87 runs, condition
# number 1,053) did not converge (R-hat 1.22, where the run without re-whitening gave 1.014)
PILOT_CONDITION_MIN_GROUPS = 4
# the chains that start afresh in re-whitened coordinates aim at least at this acceptance: at
# 0.9, three simulated groups diverged 1-2 times on each of three seeds, at 0.95 not once
REWHITENED_TARGET_ACCEPT = 0.95
# SamplerSettings(adapt_below_target=True): the chains aim at twice the rejection rate the
# target allows, never below this
STATIC_ADAPTATION_FLOOR = 0.5
# the key of the trajectory-length schedule that ``shared_jitter`` gives every chain and set
JITTER_SCHEDULE_SEED = 20261206


@dataclasses.dataclass(frozen=True)
class SamplerSettings:
    """NUTS settings; part of the compiled-program cache key.

    Parameters
    ----------
    num_chains, num_warmup, num_samples : int
        Chains, warmup iterations per chain (step size and dense mass matrix adaptation) and
        kept draws per chain.
    target_accept_prob : float, default 0.9
        The acceptance rate each chain's step-size adaptation aims at in warmup (in its second
        half, :meth:`adaptation_target`). Static HMC (``trajectory_length`` set) then runs
        every chain at the smallest step size any of them adapted, so that a chain that adapted
        where the posterior is easy does not stick where it is not.
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
        where lockstep NUTS is several times slower (measured in ``benchmarks/``), except for
        grouped fits on several CPU devices, which run one chain per device (``parallel``;
        ``import bayes_scaling`` and the command line ask for one host device per core).
    progress_bar : bool, default False
        Show progress on stderr. False runs the fit as one compiled program, except a grouped
        run that chooses half-way through warmup (``pilot="auto"`` where it applies), which
        runs in the stages below without showing them. True runs the same computation in
        stages (:mod:`bayes_scaling.engine.staged`): the compilation and the mode search as
        phase messages, then NUTS in about 20 compiled chunks with a bar (phase, percentage,
        iterations, elapsed and remaining time) between them; a grouped run's choice half-way
        through warmup is then made by the host between chunks, compiling only the branch it
        takes (the one-call program compiles both: 5-7 s more on the first call of the
        three gadre corpora's fit on a 2-core CPU, the same time once compiled). Laplace draws
        and a pilot run (``pilot=True``) show phase messages only. Not part of the
        compiled-program key.
    partial_centring : bool, default False
        True: for pooled parameters with at least ``CENTRING_MIN_GROUPS`` (10) groups, let the
        sampler move in coordinates partially centred per group, by how strongly the group's
        data determine its value at the mode (see :class:`_PartialCentring`). False (the
        default) samples the model's non-centred form as written. With the diagonal whitening
        of grouped fits the non-centred form converged where the partially centred one did not
        (10, 15 and 30 groups in ``benchmarks/RESULTS.md``): the choice made at the mode does
        not suit the population scales' whole posterior.
    offset_scaling : float, default 0.5
        For the pooled parameters of a hierarchical fit (unless partial centring applies): the
        power ``p`` in the sampler's coordinates ``v_g = z_g (1 + sigma**2 I_g)**(p/2)`` for
        the model's non-centred offsets ``z_g``, with ``I_g`` the information the group's data
        carry about its value at the mode (see :class:`_ScaledOffsets`). 0 samples the
        non-centred form as written. With the non-centred form the offsets narrow as
        ``1/sigma`` in the population scale's upper tail and the step size shrinks to suit
        it; 0.5 halves that range on the log scale (gadre's three corpora: about 35% fewer
        leapfrog steps per draw, ``benchmarks/RESULTS.md``); 1 removes it, but then the
        population scales mix worse (bulk ESS 640-750 against 2,200 on gadre). Between 0 and
        1.
    rewhitened_offset_scaling : float, default 0.75
        The power ``p`` of ``offset_scaling`` for chains that start afresh in re-whitened
        coordinates (``pilot``): those are the fits whose groups' own data are strong, where
        more of the offsets' narrowing in the population scales' upper tail is worth taking out
        (on three and six simulated groups, 0.75 in place of 0.5 cut the re-whitened chains'
        leapfrog steps per draw by a quarter to a half, and the benchmark's grouped fits that
        re-whiten took 8-30% less time, ``benchmarks/RESULTS.md``), while on weakly separated
        groups such as gadre's corpora, which go on without re-whitening, 0.5 keeps the
        population scales mixing. The re-whitened chains move in those coordinates and their
        draws are mapped back, so the posterior is unchanged. Between 0 and 1.
    tied_offsets_above : float or None, default None
        Where a grouped run may re-whiten (``pilot="auto"`` in effect), a figure read at the
        mode before sampling can let the groups whose own data are strong start in the
        re-whitened chains' coordinates: for each pooled parameter, the median over groups of
        ``s**2 I_g``, with ``s`` the groups' spread about their population location at the
        mode and ``I_g`` the information each group's data carry about its value
        (:func:`bayes_scaling.engine.centring.offset_tie_figure`). Where its largest value
        exceeds this threshold, the whole run uses ``rewhitened_offset_scaling`` in place of
        ``offset_scaling``; the power used is recorded in the posterior's attributes
        (``offset_scaling``). None (the default): never. The figure was 596 on gadre's three
        corpora, whose population scales mix worse at 0.75 from the start, and 3,000-16,000
        on the benchmark's simulated groups and all 15 Porian settings; at a threshold of
        2,000 the 15 Porian settings took 31 s against 39 s, but ten simulated groups fell
        to a bulk ESS of 898 (``benchmarks/RESULTS.md``), so it is not the default. The
        posterior is the same either way.
    mean_centred_above : float or None, default 1000
        For hierarchical fits of ``MEAN_CENTRING_MIN_GROUPS`` (3) to ``MEAN_CENTRING_MAX_GROUPS``
        (10) groups: each pooled
        parameter whose tie figure at the mode (as for ``tied_offsets_above``, per parameter)
        exceeds this moves centred, its groups' values sampled themselves and its population
        location measured from their mean (see
        :class:`bayes_scaling.engine.centring._MeanCentredOffsets`); the others keep the
        rescaled offsets. Where each group's runs pin its value down far more tightly than the
        groups differ, the non-centred offsets are tied to the location and narrow with the
        population scale, and these coordinates take both out. Measured
        (``benchmarks/RESULTS.md``): six simulated groups of 90 runs (figures 3,400 and 5,400
        for ``A`` and ``B``) took about a quarter less time; centring parameters with figures
        of 30-200 as well made divergences where the population scale is small. The posterior
        is the same either way. None: never.
    trajectory_length : float, "auto" or None, default "auto"
        None runs NUTS. A number runs static HMC instead, each iteration's trajectory drawn
        uniformly between 0.5 and 1.5 times this length in the whitened coordinates (where the
        posterior's scales are near 1 at the mode), the step size adapted as for NUTS, and at
        most ``2 ** max_tree_depth - 1`` leapfrog steps. ``"auto"``: ``GROUPED_TRAJECTORY_LENGTH``
        (3.0) for hierarchical fits, whose NUTS trees ran to their depth limit along the
        population scales' funnels (in ``benchmarks/RESULTS.md`` the fixed length gave more
        effective draws in less time on every few-group case measured), NUTS otherwise.
    whitening : {"auto", "full", "diagonal", "locations"}, default "auto"
        The sampler's coordinates ``z`` around the mode: ``"full"`` whitens by the whole Hessian
        there (``u = mode + L z`` with ``L L^T`` the inverse Hessian), ``"diagonal"`` by its
        diagonal only (each coordinate scaled by its curvature, no rotation), ``"locations"``
        as ``"diagonal"`` except that the pooled parameters' population locations move
        together, whitened by their covariance in the Laplace approximation (see
        :class:`bayes_scaling.engine.whitening.LocationBlock`; this needs the offsets rescaled,
        as by default, and acts as ``"diagonal"`` otherwise); the mass matrix adaptation
        rescales each.
        ``"auto"``: ``"locations"`` for hierarchical fits, full otherwise. One curve's posterior
        is close to its Gaussian at the mode, and the full whitening removes its ridge (``E``,
        ``A`` and the exponent); a hierarchical fit's mode sits where the population scales are
        larger than in most of the posterior, and the correlations there between the groups'
        offsets turn into directions hundreds of times too wide or narrow elsewhere, which the
        diagonal form does not bake in (``benchmarks/RESULTS.md``). The population locations
        are the exception: with the groups pooled strongly they carry one curve's ridge, and
        whitening them together took about a third of the leapfrog steps off gadre's
        three-corpus fit.
    pilot : bool or "auto", default "auto"
        Re-whitening of a hierarchical fit's coordinates by the chains' own draws. Where the
        groups' own data are strong, each population location is tied linearly to its groups'
        offsets (posterior correlations of -0.85 to -0.97), which no diagonal scale undoes, and
        the step size shrinks to suit the tie. True: a pilot run first (30% of ``num_warmup``
        as warmup and 20% as kept draws per chain), the coordinates then moved by the Cholesky
        factor of the chains' pooled covariance of those draws, each chain's about its own
        mean (correlations shrunk by ``PILOT_SHRINK`` towards none), and 60% of
        ``num_warmup`` more warmup before the ``num_samples`` draws. ``"auto"`` (static HMC
        with at least ``PILOT_MIN_GROUPS`` groups, at least two read draws per group offset;
        elsewhere it is False): the chains run the first half of the usual warmup, and only
        where the pooled draws of its last fifth show a location's correlation with one of its
        own offsets beyond ``PILOT_TIE`` in size, or, where some pooled parameter moves
        centred (``mean_centred_above``) in a fit of at least ``PILOT_CONDITION_MIN_GROUPS``
        groups, the ratio of the largest to the smallest eigenvalue of their correlation
        matrix beyond ``PILOT_CONDITION``, are the
        coordinates re-whitened by those draws (each chain's about its own mean), for 60% of
        ``num_warmup`` more warmup and the draws, at a target acceptance of at least
        ``REWHITENED_TARGET_ACCEPT``; otherwise the chains go on as with False, draw for draw.
        Measured (``benchmarks/RESULTS.md``): re-whitening about halved the time of three and
        six simulated groups and the 15 Porian settings and converged ten groups where the
        plain run did not; on gadre's three corpora it cost time and ESS, and there the
        correlation read half-way is 0.64-0.71 (0.92-0.97 where it helps) and the condition
        number 74-108 (190-630 on the simulated groups whose centred coordinates leave no
        tie). With ``progress_bar``, a run with a pilot runs as one program, with phase
        messages only; the choice half-way shows the bar, made between the staged fit's
        chunks.
    adapt_below_target : bool or "auto", default "auto"
        Static HMC only. True: from half-way through warmup (:meth:`gate_phases`) each
        chain's step-size adaptation aims at twice the rejection rate that
        ``target_accept_prob`` allows (:meth:`adaptation_target`: 0.8 for 0.9). The chains then
        all run at the smallest step size any of them adapted, and in a grouped fit, whose
        chains adapt step sizes up to 2x apart, that minimum leaves each chain accepting more
        than it aimed at, so aiming at 0.9 buys only leapfrog steps (``benchmarks/RESULTS.md``).
        The first half aims at ``target_accept_prob``, since the choice half-way reads its
        draws; a pilot's and re-whitened chains aim at their own targets throughout.
        ``"auto"``: True for a grouped fit, False elsewhere: one curve's chains adapt alike,
        and ``fit_many``'s sets aiming lower drew more divergences on the Porian settings.
    shared_jitter : bool, default False
        Static HMC only: every chain draws its trajectory lengths from one schedule, the same
        for every chain (and, in :func:`bayes_scaling.engine.run_many`, every data set), in
        place of each chain's own. The schedule is a fixed pseudo-random sequence indexed by
        the iteration (``JITTER_SCHEDULE_SEED``), independent of the draws, so each chain still
        leaves its posterior invariant. Data sets sampled in lockstep then differ in leapfrog
        steps only through their step sizes, and none waits for another's long draw of the
        length: ``run_many`` sets it (``benchmarks/RESULTS.md``).
    """

    num_chains: int = 4
    num_warmup: int = 500
    num_samples: int = 1000
    target_accept_prob: float = 0.9
    dense_mass: bool | None = None
    max_tree_depth: int = 10
    chain_method: str | None = None
    progress_bar: bool = False
    partial_centring: bool = False
    offset_scaling: float = 0.5
    rewhitened_offset_scaling: float = 0.75
    tied_offsets_above: float | None = None
    mean_centred_above: float | None = 1000.0
    trajectory_length: float | str | None = "auto"
    whitening: str = "auto"
    pilot: bool | str = "auto"
    adapt_below_target: bool | str = "auto"
    shared_jitter: bool = False

    def __post_init__(self) -> None:
        for name in ("num_chains", "num_warmup", "num_samples"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, int)
                or v < (0 if name == "num_warmup" else 1)
            ):
                raise ValueError(
                    f"{name} must be a {'non-negative' if name == 'num_warmup' else 'positive'} "
                    f"integer; got {v!r}"
                )
        if not 0 < self.target_accept_prob < 1:
            raise ValueError(f"target_accept_prob must be in (0, 1); got {self.target_accept_prob}")
        if self.chain_method is not None and self.chain_method not in CHAIN_METHODS:
            raise ValueError(
                f"chain_method must be one of {', '.join(CHAIN_METHODS)} or None; got "
                f"{self.chain_method!r}"
            )
        if self.trajectory_length not in (None, "auto") and not (
            isinstance(self.trajectory_length, int | float)
            and not isinstance(self.trajectory_length, bool)
            and 0 < self.trajectory_length < float("inf")
        ):
            raise ValueError(
                f"trajectory_length must be a positive number, 'auto' or None; got "
                f"{self.trajectory_length!r}"
            )
        for name in ("offset_scaling", "rewhitened_offset_scaling"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
                raise ValueError(f"{name} must be a number between 0 and 1; got {v!r}")
        for name in ("tied_offsets_above", "mean_centred_above"):
            v = getattr(self, name)
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, int | float) or not v > 0
            ):
                raise ValueError(f"{name} must be a positive number or None; got {v!r}")
        if self.whitening not in WHITENINGS:
            raise ValueError(
                f"whitening must be one of {', '.join(WHITENINGS)}; got {self.whitening!r}"
            )
        if not (isinstance(self.pilot, bool) or self.pilot == "auto"):
            raise ValueError(f"pilot must be True, False or 'auto'; got {self.pilot!r}")
        if not (isinstance(self.adapt_below_target, bool) or self.adapt_below_target == "auto"):
            raise ValueError(
                f"adapt_below_target must be True, False or 'auto'; got {self.adapt_below_target!r}"
            )
        if (
            isinstance(self.max_tree_depth, bool)
            or not isinstance(self.max_tree_depth, int)
            or self.max_tree_depth < 1
        ):
            raise ValueError(
                f"max_tree_depth must be a positive integer; got {self.max_tree_depth!r}"
            )

    def static_length(self) -> float | None:
        """The mean trajectory length of static HMC, or None for NUTS (``"auto"`` left
        unresolved, as outside a grouped fit, is NUTS)."""
        length = self.trajectory_length
        return None if length is None or isinstance(length, str) else float(length)

    def adaptation_target(self) -> float:
        """The acceptance rate each chain's step-size adaptation aims at in the second half of
        warmup.

        ``target_accept_prob``, or, for static HMC with ``adapt_below_target=True``, twice the
        rejection rate it allows (``1 - 2 * (1 - target_accept_prob)``, not below
        ``STATIC_ADAPTATION_FLOOR``).

        Examples
        --------
        >>> SamplerSettings(trajectory_length=3.0).adaptation_target()
        0.9
        >>> SamplerSettings(trajectory_length=3.0, adapt_below_target=True).adaptation_target()
        0.8
        """
        target = float(self.target_accept_prob)
        if self.static_length() is None or self.adapt_below_target is not True:
            return target
        return max(round(1.0 - 2.0 * (1.0 - target), 12), STATIC_ADAPTATION_FLOOR)

    def pilot_phases(self) -> tuple[int, int, int]:
        """The pilot's warmup and kept draws per chain and the warmup after it (``pilot``).

        Examples
        --------
        >>> SamplerSettings(pilot=True).pilot_phases()
        (150, 100, 300)
        """
        w = self.num_warmup
        return round(0.3 * w), max(round(0.2 * w), 2), round(0.6 * w)

    def rewhitened(self) -> SamplerSettings:
        """The settings of the chains that start afresh in re-whitened coordinates, after a
        pilot run or the choice half-way: 60% of ``num_warmup`` as their warmup, and a target
        acceptance of at least ``REWHITENED_TARGET_ACCEPT``.

        Examples
        --------
        >>> again = SamplerSettings().rewhitened()
        >>> again.num_warmup, again.target_accept_prob
        (300, 0.95)
        """
        return dataclasses.replace(
            self,
            num_warmup=self.pilot_phases()[2],
            pilot=False,
            adapt_below_target=False,
            target_accept_prob=max(self.target_accept_prob, REWHITENED_TARGET_ACCEPT),
        )

    def gate_phases(self) -> tuple[int, int]:
        """``pilot="auto"``: the warmup iterations after which a grouped run chooses whether to
        re-whiten (half of ``num_warmup``), and how many of the last of them it reads.

        Examples
        --------
        >>> SamplerSettings().gate_phases()
        (250, 100)
        """
        w = self.num_warmup
        half = w // 2
        return half, min(half, max(round(0.2 * w), 2))

    def dense_for(self, d: int) -> bool:
        """Whether a ``d``-parameter model adapts a dense mass matrix."""
        return self.dense_mass if self.dense_mass is not None else d <= DENSE_MASS_MAX_DIM

    def resolved_chain_method(self) -> str:
        if self.chain_method is not None:
            return self.chain_method
        return "sequential" if jax.default_backend() == "cpu" else "vectorized"

    def compile_key(self) -> tuple:
        """The fields that change the compiled program."""
        return (
            self.num_chains,
            self.num_warmup,
            self.num_samples,
            float(self.target_accept_prob),
            self.dense_mass,
            self.max_tree_depth,
            self.resolved_chain_method(),
            self.partial_centring,
            float(self.offset_scaling),
            float(self.rewhitened_offset_scaling),
            None if self.tied_offsets_above is None else float(self.tied_offsets_above),
            None if self.mean_centred_above is None else float(self.mean_centred_above),
            self.trajectory_length,
            self.whitening,
            self.pilot,
            self.adapt_below_target,
            self.shared_jitter,
        )


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
    xp = {
        k: np.concatenate([np.asarray(v, np.float32), np.full(pad, np.mean(v), np.float32)])
        for k, v in x.items()
    }
    yp = np.concatenate([np.asarray(y, np.float32), np.full(pad, np.mean(y), np.float32)])
    gp = (
        None
        if group_index is None
        else np.concatenate([np.asarray(group_index, np.int32), np.zeros(pad, np.int32)])
    )
    mask = np.arange(size) < n
    return xp, yp, gp, mask


@dataclasses.dataclass(frozen=True)
class GroupBlocks:
    """A grouped data set in blocks: group ``g``'s rows at ``g*m`` to ``g*m + m - 1``.

    ``x``, ``y`` and ``mask`` have ``G * m`` rows (rows past a group's count padded, masked
    out); ``rows[i]`` is where the data's row ``i`` went, to put pointwise outputs back.
    """

    x: dict[str, np.ndarray]
    y: np.ndarray
    mask: np.ndarray
    rows: np.ndarray

    def pointwise(self, values) -> np.ndarray:
        """A pointwise output ``(..., G * m)`` in the data's row order ``(..., n)``."""
        return np.asarray(values)[..., self.rows]


def group_blocks(
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    group_index: np.ndarray,
    num_groups: int,
    pad_to: int | None = None,
) -> GroupBlocks:
    """The block layout of a grouped data set, blocks ``m = bucket_size(...)`` rows long.

    ``m`` holds the largest group, and at least ``pad_to / num_groups`` rows, so that subsets
    of one data set given the same ``pad_to`` (leave-future-out refits) mostly share ``m`` and
    with it one compiled program. Padded rows take the covariates' and target's means, as in
    :func:`pad_inputs`.

    >>> b = group_blocks({"N": np.array([1.0, 2.0, 3.0])}, np.zeros(3), np.array([1, 0, 1]), 2)
    >>> b.rows.tolist(), b.mask.reshape(2, -1).sum(1).tolist(), len(b.y)
    ([8, 0, 9], [1, 2], 16)
    >>> b.x["N"][b.rows].tolist()
    [1.0, 2.0, 3.0]
    """
    group_index = np.asarray(group_index, np.int64)
    counts = np.bincount(group_index, minlength=num_groups)
    share = math.ceil(int(pad_to or 0) / num_groups)
    m = bucket_size(max(int(counts.max()), share, 1))
    # each row's place within its group, in the data's order
    order = np.argsort(group_index, kind="stable")
    place = np.empty_like(group_index)
    place[order] = np.arange(group_index.size) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = group_index * m + place
    size = num_groups * m

    def spread(values, fill):
        out = np.full(size, fill, np.float32)
        out[rows] = values
        return out

    xb = {k: spread(np.asarray(v, np.float32), np.mean(v)) for k, v in x.items()}
    yb = spread(np.asarray(y, np.float32), np.mean(y))
    mask = np.zeros(size, bool)
    mask[rows] = True
    return GroupBlocks(xb, yb, mask, rows)


# --------------------------------------------------------------------------- the program
