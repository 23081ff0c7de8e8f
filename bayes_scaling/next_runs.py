"""What to run next: the value of information of candidate small runs (preposterior analysis).

A decision waits at a target compute ``C``: the model size ``N`` on the line ``C = k N D``. Before
committing, a few small runs ``x = (N_x, D_x)`` could be bought within a budget. Each is worth the
expected improvement of the decision it would bring:

1. **Simulate** the run's outcome from the posterior predictive: a draw ``s`` (uniformly, as the
   draws are equally weighted), then ``log y = log L_s(x) + sigma_s eps`` with ``eps`` standard
   normal, or Student-t with the draw's ``nu`` when the fit has one.
2. **Update** the posterior cheaply by importance reweighting of the existing draws:
   ``w_r ∝ p(log y | x, theta_r)``, the likelihood of the simulated outcome under each draw.
3. **Re-decide** under the reweighted posterior and score the decision by the objective:
   ``"regret"``, the posterior expected regret ``min_N sum_r w_r [L_r(N, C/(kN)) - L*_r(C)]``;
   ``"width"``, the width of the ``interval_prob`` interval of the law loss at the allocation;
   ``"n_opt_width"``, the width of the interval of ``log N*(C)``.
4. **Average** over simulated outcomes: the expected gain is the objective now minus its
   expected value after the run (the expected value of sample information, EVSI).

Candidates are ranked by gain per FLOP; a greedy batch adds, while the budget lasts, the run with
the largest marginal gain per FLOP given the runs already in the batch (their outcomes simulated
jointly from the same draw). Outcomes use common random numbers across candidates, so the ranking
is not blurred by independent Monte Carlo noise.

Reweighting is accurate while the new runs move the posterior little relative to its spread; each
candidate reports the effective sample size of its weights (``ess``) to flag a collapsing update.

References
----------
Raiffa & Schlaifer 1961, "Applied Statistical Decision Theory" (preposterior analysis);
Hoffmann et al. 2022, arXiv:2203.15556; Besiroglu et al. 2024, arXiv:2404.10102.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling import draws as _draws
from bayes_scaling.laws import LawSpec
from bayes_scaling.misallocation import (
    _count,
    _positive,
    covariates,
    frontier,
    law_params,
    load_draws,
)

__all__ = [
    "OBJECTIVES",
    "NextRuns",
    "candidate_grid",
    "importance_weights",
    "next_runs",
    "plot_next_runs",
]

OBJECTIVES: tuple[str, ...] = ("regret", "width", "n_opt_width")


# --------------------------------------------------------------------------- candidates


def candidate_grid(
    budget: float,
    *,
    num_levels: int = 7,
    num_ratios: int = 9,
    ratio_range: tuple[float, float] = (1.0, 1000.0),
    span: float = 1000.0,
    flops_per_token: float = 6.0,
) -> pd.DataFrame:
    """Candidate runs: IsoFLOP levels up to the budget, several tokens-per-parameter ratios each.

    Parameters
    ----------
    budget : float
        FLOPs available; the largest level costs the whole budget.
    num_levels : int, default 7
        Compute levels, log-spaced from ``budget / span`` to ``budget``.
    num_ratios : int, default 9
        Tokens per parameter ``D/N`` per level, log-spaced over ``ratio_range``.
    ratio_range : (float, float), default (1, 1000)
    span : float, default 1000
        Ratio of the largest to the smallest level.
    flops_per_token : float, default 6.0
        ``k`` in ``cost = k N D``.

    Returns
    -------
    pandas.DataFrame
        Columns ``N``, ``D``, ``cost``, one row per candidate.

    Examples
    --------
    >>> len(candidate_grid(1e21))
    63
    """
    budget = _positive("budget", budget)
    k = _positive("flops_per_token", flops_per_token)
    low_ratio, high_ratio = (_positive("ratio_range bound", v) for v in ratio_range)
    if low_ratio > high_ratio:
        raise ValueError(f"ratio_range must be (low, high) with low <= high; got {ratio_range}")
    span = _positive("span", span)
    levels = np.geomspace(budget / span, budget, _count("num_levels", num_levels, 1))
    ratios = np.geomspace(low_ratio, high_ratio, _count("num_ratios", num_ratios, 1))
    cost, ratio = (a.ravel() for a in np.meshgrid(levels, ratios, indexing="ij"))
    n = np.sqrt(cost / (k * ratio))
    return pd.DataFrame({"N": n, "D": ratio * n, "cost": cost})


def _read_candidates(candidates: Any, budget: float, k: float) -> pd.DataFrame:
    """Candidates within the budget: the default grid, a CSV path or a frame with ``N``, ``D``."""
    if isinstance(candidates, str) and candidates == "grid":
        return candidate_grid(budget, flops_per_token=k)
    if isinstance(candidates, (str, Path)):
        frame = pd.read_csv(candidates)
    elif isinstance(candidates, (pd.DataFrame, Mapping)):
        frame = pd.DataFrame(candidates)
    else:
        raise TypeError(
            "candidates must be 'grid', a CSV path or a table with columns N and D; "
            f"got {type(candidates).__name__}"
        )
    missing = [c for c in ("N", "D") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"candidates need columns N and D; missing {missing}; got {list(frame.columns)}"
        )
    values = frame[["N", "D"]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(values) & (values > 0)).all(axis=1)
    if bad.any():
        raise ValueError(
            f"candidate N and D must be finite and > 0; found {int(bad.sum())} bad rows "
            f"(first at row {int(np.argmax(bad))})"
        )
    n, d = values[:, 0], values[:, 1]
    out = pd.DataFrame({"N": n, "D": d, "cost": k * n * d})
    within = out[out["cost"] <= budget * (1 + 1e-9)].reset_index(drop=True)
    if within.empty:
        raise ValueError(
            f"no candidate costs at most the budget {budget:.3g} FLOP (cheapest "
            f"{out['cost'].min():.3g}); raise the budget or add smaller runs"
        )
    return within


# --------------------------------------------------------------------------- likelihood


def _log_loss(spec: LawSpec, draws: Mapping[str, np.ndarray], n: Any, d: Any) -> np.ndarray:
    """Law log loss of every draw at every point, (S, M), in float32 like the frontier kernels."""
    log_n = np.log(np.asarray(n, dtype=float)).astype(np.float32)
    log_d = np.log(np.asarray(d, dtype=float)).astype(np.float32)
    x = covariates(spec.covariates, log_n, log_d)
    return _draws.law_over_draws(spec, law_params(spec, draws), x)


def _log_density(residual: np.ndarray, sigma: np.ndarray, nu: np.ndarray | None) -> np.ndarray:
    """``draws.noise_log_density`` of residuals ``(J, S)`` (draws last), in their memory order."""
    # transposed views keep the residuals' layout, so later sums add in the order they always did
    return _draws.noise_log_density(residual.T, sigma, nu).T


def _noise_params(draws: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    sigma = draws.get("sigma")
    if sigma is None:
        raise ValueError("the value of information needs draws of 'sigma' (the noise of log loss)")
    if np.any(sigma <= 0):
        raise ValueError("draws['sigma'] must be > 0")
    nu = draws.get("nu")
    if nu is not None and np.any(nu <= 0):
        raise ValueError("draws['nu'] must be > 0 (Student-t degrees of freedom)")
    return sigma, nu


def _normalise(log_weights: np.ndarray) -> np.ndarray:
    """Rows of log weights -> normalised weights (softmax along the last axis)."""
    shifted = np.exp(log_weights - log_weights.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def importance_weights(
    draws_or_fit: Any,
    runs: Any,
    *,
    law: str | LawSpec | None = None,
    group: Any = None,
) -> np.ndarray:
    """Weights that update the posterior draws with new runs, without refitting.

    Parameters
    ----------
    draws_or_fit : mapping or arviz.InferenceData
        Posterior draws (with ``sigma``, and ``nu`` for a Student-t fit) or a fit.
    runs : pandas.DataFrame or mapping
        New runs with columns ``N``, ``D`` and ``loss``.
    law, group
        As in :func:`bayes_scaling.misallocation.load_draws`.

    Returns
    -------
    numpy.ndarray
        Shape (S,), summing to 1: ``w_s ∝ prod_i p(log loss_i | N_i, D_i, theta_s)``.

    Notes
    -----
    Good while the new runs move the posterior little relative to its spread; the effective
    sample size ``1 / sum(w**2)`` says how many draws still carry the update.

    Examples
    --------
    >>> draws = dict(E=[1.8, 1.9], A=[480.0, 480.0], B=[2000.0, 2000.0], alpha=[0.35, 0.35],
    ...              beta=[0.36, 0.36], sigma=[0.01, 0.01])
    >>> w = importance_weights(draws, {"N": [1e8], "D": [2e9], "loss": [3.0]})
    >>> bool(w[0] > w[1])
    True
    """
    spec, draws = load_draws(draws_or_fit, law, group)
    frame = pd.DataFrame(runs)
    missing = [c for c in ("N", "D", "loss") if c not in frame.columns]
    if missing:
        raise ValueError(f"runs need columns N, D and loss; missing {missing}")
    values = frame[["N", "D", "loss"]].to_numpy(dtype=float)
    if not (np.isfinite(values) & (values > 0)).all():
        raise ValueError("runs' N, D and loss must be finite and > 0")
    sigma, nu = _noise_params(draws)
    mu = _log_loss(spec, draws, values[:, 0], values[:, 1])  # (S, M)
    residual = np.log(values[:, 2])[:, None] - mu.T  # (M, S)
    return _normalise(_log_density(residual, sigma, nu).sum(axis=0))


# --------------------------------------------------------------------------- the decision


@dataclasses.dataclass(frozen=True)
class _Decision:
    """The decision at the target compute, in the form the objective needs."""

    objective: str
    log_n: np.ndarray  # (K,) candidate sizes on the target line
    regret: np.ndarray  # (S, K) law loss minus each draw's optimum
    sorted_values: np.ndarray  # (S,) values whose interval width is the objective, sorted
    order: np.ndarray  # (S,) the sorting permutation
    interval_prob: float


def _decision(spec, draws, compute, k, objective, interval_prob, num_decisions) -> _Decision:
    n_opt, loss_opt = frontier(spec, draws, compute, flops_per_token=k)
    log_opt = np.log(n_opt)
    low, high = np.quantile(log_opt, [0.001, 0.999])
    log_n = np.linspace(low - math.log(2.0), high + math.log(2.0), num_decisions)
    log_n = np.minimum(log_n, math.log(compute / k))
    law = np.exp(_log_loss(spec, draws, np.exp(log_n), compute / (k * np.exp(log_n))))
    regret = law - loss_opt[:, None]
    current = int(np.argmin(regret.mean(axis=0)))
    values = log_opt if objective == "n_opt_width" else law[:, current]
    order = np.argsort(values)
    return _Decision(objective, log_n, regret, values[order], order, interval_prob)


def _vertex_minimum(curves: np.ndarray, log_n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: minimum value and location of a parabola through the grid minimum."""
    rows = np.arange(curves.shape[0])
    best = np.argmin(curves, axis=1)
    middle = np.clip(best, 1, curves.shape[1] - 2)
    left, centre, right = (curves[rows, middle + o] for o in (-1, 0, 1))
    curvature = left - 2 * centre + right
    interior = (best == middle) & (curvature > 0)
    safe = np.where(interior, curvature, 1.0)
    shift = np.where(interior, np.clip(0.5 * (left - right) / safe, -0.5, 0.5), 0.0)
    value = np.where(interior, centre - 0.125 * (left - right) ** 2 / safe, curves[rows, best])
    step = log_n[1] - log_n[0]
    return value, log_n[middle] + shift * step


def _objective(decision: _Decision, weights: np.ndarray) -> np.ndarray:
    """The objective after each row of normalised weights ``(J, S)``: shape (J,)."""
    if decision.objective == "regret":
        return _vertex_minimum(weights @ decision.regret, decision.log_n)[0]
    tail = (1.0 - decision.interval_prob) / 2.0
    cumulative = np.cumsum(weights[:, decision.order], axis=1)
    last = decision.sorted_values.size - 1
    low = np.minimum((cumulative < tail).sum(axis=1), last)
    high = np.minimum((cumulative < 1.0 - tail).sum(axis=1), last)
    return decision.sorted_values[high] - decision.sorted_values[low]


# --------------------------------------------------------------------------- outcomes and gains


@dataclasses.dataclass(frozen=True)
class _Outcomes:
    """Simulated log losses of every candidate, ``(J, M)``, and each draw's mean ``(S, M)``."""

    log_loss: np.ndarray
    mean: np.ndarray
    sigma: np.ndarray
    nu: np.ndarray | None

    def log_likelihood(self, column: int) -> np.ndarray:
        """``(J, S)``: log density of outcome j of candidate ``column`` under draw s."""
        residual = self.log_loss[:, column, None] - self.mean[None, :, column]
        return _log_density(residual, self.sigma, self.nu)


def _simulate(spec, draws, frame, num_outcomes, rng) -> _Outcomes:
    sigma, nu = _noise_params(draws)
    mean = _log_loss(spec, draws, frame["N"].to_numpy(), frame["D"].to_numpy())  # (S, M)
    size = sigma.size
    source = rng.choice(size, size=num_outcomes, replace=num_outcomes > size)
    # Student-t as normal / sqrt(chi2 / nu) rather than draws.noise (whose standard_t consumes
    # the generator differently): the seeded outcomes, and so the rankings, stay as published
    eps = rng.standard_normal((num_outcomes, len(frame)))
    if nu is not None:
        nu_j = nu[source][:, None]
        finite = np.isfinite(nu_j)
        nu_f = np.where(finite, nu_j, 1.0)
        chi2 = rng.chisquare(np.broadcast_to(nu_f, eps.shape))
        eps = np.where(finite, eps * np.sqrt(nu_f / chi2), eps)
    log_loss = mean[source] + sigma[source][:, None] * eps
    return _Outcomes(log_loss, mean, sigma, nu)


def _score(decision, outcomes, base_loglik, column) -> tuple[float, float, float]:
    """Mean objective after adding a candidate, its Monte Carlo SE, and the mean ESS fraction."""
    loglik = outcomes.log_likelihood(column)
    weights = _normalise(loglik if base_loglik is None else base_loglik + loglik)
    values = _objective(decision, weights)
    ess = 1.0 / np.sum(weights**2, axis=1) / weights.shape[1]
    spread = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else 0.0
    return float(values.mean()), spread, float(ess.mean())


def _greedy(decision, outcomes, frame, budget, baseline, max_runs, first) -> list[dict[str, Any]]:
    """Add, while the budget lasts, the run of most marginal gain per FLOP (``first``: pass 1)."""
    batch: list[dict[str, Any]] = []
    chosen: set[int] = set()
    loglik = None
    current, left = baseline, budget
    cost = frame["cost"].to_numpy()
    while len(batch) < max_runs:
        options = [m for m in range(len(frame)) if m not in chosen and cost[m] <= left * (1 + 1e-9)]
        if not options:
            break
        scores = {
            m: first[m] if loglik is None else _score(decision, outcomes, loglik, m)[0]
            for m in options
        }
        best = max(options, key=lambda m: (current - scores[m]) / cost[m])
        gain = current - scores[best]
        if gain <= 0:
            break
        chosen.add(best)
        step = outcomes.log_likelihood(best)
        loglik = step if loglik is None else loglik + step
        current, left = scores[best], left - cost[best]
        run = {"N": float(frame["N"].iloc[best]), "D": float(frame["D"].iloc[best])}
        run.update(cost=float(cost[best]), gain=float(gain), gain_per_flop=float(gain / cost[best]))
        batch.append(run | {"cumulative_gain": float(baseline - current)})
    return batch


# --------------------------------------------------------------------------- result and entry


@dataclasses.dataclass(frozen=True, eq=False)
class NextRuns:
    """Candidate runs ranked by expected gain per FLOP, and a greedy batch within the budget.

    Attributes
    ----------
    candidates : pandas.DataFrame
        One row per candidate, best gain per FLOP first: ``N``, ``D``, ``cost``, ``gain``
        (expected reduction of the objective), ``gain_se`` (Monte Carlo standard error),
        ``gain_per_flop`` and ``ess`` (mean effective sample size of the weights, as a fraction
        of the draws).
    batch : list of dict
        Greedy batch: ``N``, ``D``, ``cost``, ``gain`` (marginal), ``gain_per_flop``,
        ``cumulative_gain``.
    baseline : float
        The objective now (expected regret in nats, or an interval width).
    objective : str
    compute, budget : float
        Target compute of the decision and FLOPs available for the runs.
    decision_N, decision_D : float
        The expected-loss choice at ``compute`` under the current posterior.
    existing : pandas.DataFrame
        ``N``, ``D`` of the fit's runs (empty for draws).
    num_outcomes, num_draws : int
    law : str
    """

    candidates: pd.DataFrame
    batch: list[dict[str, Any]]
    baseline: float
    objective: str
    compute: float
    budget: float
    decision_N: float
    decision_D: float
    existing: pd.DataFrame
    num_outcomes: int
    num_draws: int
    law: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``candidates`` (ranked), ``batch``, ``batch_cost``, ``batch_gain``,
        ``baseline``, ``objective``, ``compute``, ``budget``, ``decision``, ``num_outcomes``,
        ``num_draws``, ``law``."""
        return {
            "candidates": [
                {key: float(v) for key, v in row.items()}
                for row in self.candidates.to_dict(orient="records")
            ],
            "batch": [dict(run) for run in self.batch],
            "batch_cost": float(sum(run["cost"] for run in self.batch)),
            "batch_gain": float(self.batch[-1]["cumulative_gain"]) if self.batch else 0.0,
            "baseline": float(self.baseline),
            "objective": self.objective,
            "compute": float(self.compute),
            "budget": float(self.budget),
            "decision": {"N": float(self.decision_N), "D": float(self.decision_D)},
            "num_outcomes": int(self.num_outcomes),
            "num_draws": int(self.num_draws),
            "law": self.law,
        }


def next_runs(
    fit: Any,
    compute: float,
    budget: float,
    *,
    candidates: Any = "grid",
    objective: str = "regret",
    law: str | LawSpec | None = None,
    group: Any = None,
    flops_per_token: float = 6.0,
    num_outcomes: int = 128,
    max_runs: int = 8,
    num_decisions: int = 48,
    interval_prob: float = 0.9,
    seed: int = 0,
) -> NextRuns:
    """Rank candidate small runs by the expected improvement of the decision at ``compute``.

    Parameters
    ----------
    fit : arviz.InferenceData or mapping
        A fit of a law over ``N`` and ``D``, or its draws (with ``sigma``, and ``nu``).
    compute : float
        Target compute of the decision, FLOPs.
    budget : float
        FLOPs available for the new runs (each costs ``k N D``).
    candidates : "grid", path or table, default "grid"
        :func:`candidate_grid` of the budget, a CSV file or a table with columns ``N``, ``D``;
        runs above the budget are dropped.
    objective : {"regret", "width", "n_opt_width"}, default "regret"
        Expected regret of the expected-loss allocation (nats); the width of the
        ``interval_prob`` interval of the law loss at the allocation (nats); or of ``log N*``.
    law, group
        As in :func:`bayes_scaling.misallocation.load_draws`.
    flops_per_token : float, default 6.0
    num_outcomes : int, default 128
        Simulated outcomes per candidate (common to all candidates).
    max_runs : int, default 8
        Most runs in the greedy batch.
    num_decisions : int, default 48
        Model sizes on the target line (the optimum between them is found by a parabola).
    interval_prob : float, default 0.9
    seed : int, default 0

    Returns
    -------
    NextRuns

    Raises
    ------
    ValueError
        For an unknown objective, no candidate within the budget, draws without ``sigma``, or
        bad arguments.

    Notes
    -----
    Preposterior analysis with importance reweighting (module docstring). The regret of ``N``
    under draw ``s`` is ``L_s(N, C/(kN)) - min_N' L_s(N', C/(kN'))``; the posterior expected
    regret of the expected-loss decision is the minimum of the weighted regret curve.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> draws = dict(E=rng.normal(1.8, 0.02, 400), A=rng.lognormal(6.2, 0.1, 400),
    ...              B=rng.lognormal(7.6, 0.2, 400), alpha=rng.normal(0.35, 0.01, 400),
    ...              beta=rng.normal(0.36, 0.01, 400), sigma=np.full(400, 0.01))
    >>> result = next_runs(draws, compute=1e24, budget=1e21, num_outcomes=32, max_runs=2)
    >>> sum(run["cost"] for run in result.batch) <= 1e21
    True
    """
    compute = _positive("compute", compute)
    budget = _positive("budget", budget)
    k = _positive("flops_per_token", flops_per_token)
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; available: {', '.join(OBJECTIVES)}")
    interval_prob = _positive("interval_prob", interval_prob)
    if interval_prob >= 1:
        raise ValueError(f"interval_prob must be in (0, 1); got {interval_prob:g}")
    spec, draws = load_draws(fit, law, group)
    frame = _read_candidates(candidates, budget, k)
    decision = _decision(
        spec, draws, compute, k, objective, interval_prob, _count("num_decisions", num_decisions, 5)
    )
    size = next(iter(draws.values())).size
    baseline = float(_objective(decision, np.full((1, size), 1.0 / size))[0])
    rng = _draws.numpy_rng(seed=_count("seed", seed, 0))
    outcomes = _simulate(spec, draws, frame, _count("num_outcomes", num_outcomes, 2), rng)
    scores = np.array([_score(decision, outcomes, None, m) for m in range(len(frame))])
    ranked = frame.assign(gain=baseline - scores[:, 0], gain_se=scores[:, 1], ess=scores[:, 2])
    ranked = ranked.assign(gain_per_flop=ranked["gain"] / ranked["cost"])
    ranked = ranked.sort_values("gain_per_flop", ascending=False, kind="stable")
    batch = _greedy(
        decision, outcomes, frame, budget, baseline, _count("max_runs", max_runs, 1), scores[:, 0]
    )
    equal = np.full((1, size), 1.0 / size)
    decision_n = float(np.exp(_vertex_minimum(equal @ decision.regret, decision.log_n)[1][0]))
    columns = ["N", "D", "cost", "gain", "gain_se", "gain_per_flop", "ess"]
    existing = pd.DataFrame({"N": [], "D": []})
    if hasattr(fit, "constant_data"):  # a fit: its runs, for the plot
        existing = _draws.fit_frame(fit)[["N", "D"]].reset_index(drop=True)
    return NextRuns(
        ranked[columns].reset_index(drop=True),
        batch,
        baseline,
        objective,
        compute,
        budget,
        decision_n,
        compute / (k * decision_n),
        existing,
        int(num_outcomes),
        size,
        spec.name,
    )


_EXISTING_STYLE = {"s": 10, "c": "0.6", "marker": "x", "label": "existing runs"}
_BATCH_STYLE = {"s": 180, "facecolors": "none", "edgecolors": "red", "linewidths": 1.8}


def plot_next_runs(result: NextRuns, path: str | Path | None = None, *, ax: Any = None):
    """Expected gain per FLOP over the (N, D) plane, with the existing runs and the batch.

    Parameters
    ----------
    result : NextRuns
        From :func:`next_runs`.
    path : str or Path, optional
        Save the figure there (format from the suffix).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    fig, ax = plt.subplots(figsize=(6.8, 5.0)) if ax is None else (ax.figure, ax)
    cand = result.candidates
    positive = cand["gain_per_flop"].clip(lower=0.0)
    floor = max(float(positive[positive > 0].min()) if (positive > 0).any() else 1e-300, 1e-300)
    if not result.existing.empty:
        ax.scatter(result.existing["N"], result.existing["D"], **_EXISTING_STYLE)
    points = ax.scatter(
        cand["N"],
        cand["D"],
        c=positive.clip(lower=floor),
        s=60,
        cmap="viridis",
        norm=LogNorm(vmin=floor, vmax=max(float(positive.max()), floor * 10)),
        label="candidates",
    )
    fig.colorbar(points, ax=ax, label=f"expected gain per FLOP ({result.objective})")
    if result.batch:
        batch = pd.DataFrame(result.batch)
        ax.scatter(batch["N"], batch["D"], label="greedy batch", **_BATCH_STYLE)
    ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel="tokens D")
    ax.set_title(f"next runs for {result.compute:.2g} FLOP, budget {result.budget:.2g} FLOP")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
