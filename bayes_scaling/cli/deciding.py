"""The decision commands: ``allocate``, ``target``, ``batch`` and ``next-runs``."""

from __future__ import annotations

from typing import Any

from bayes_scaling.cli import _common as _c


def cmd_allocate(args) -> int:
    from bayes_scaling import decide, inference

    idata = inference.load_fit(args.fit)
    kwargs = {
        "risk": decide.parse_risk(args.risk),
        "flops_per_token": args.flops_per_token,
        "max_n": args.max_n,
        "unique_tokens": args.unique_tokens,
        "repetition": args.repetition,
        "group": args.group,
        "num_candidates": args.candidates,
        "seed": args.seed,
        "discrepancy": _decision_discrepancy(args.discrepancy),
    }
    n_range = _c.parse_pair(args.n_range, "--n-range", "parameters")
    if n_range is not None:
        kwargs["n_range"] = n_range
    if args.inference_tokens is not None:
        kwargs["inference_tokens"] = args.inference_tokens
        kwargs["dollars_per_flop"] = args.dollars_per_flop
    result = decide.allocate(idata, args.compute, **kwargs)
    out = result.to_dict()
    out["wasted_compute"] = _wasted_compute(idata, result, args)
    q = out["loss_quantiles"]
    lo, hi = out["n_opt_interval"]
    lines = [
        f"budget {out['compute']:.3g} FLOP, risk {out['risk']}",
        f"choose N = {out['N']:.3g} parameters, D = {out['D']:.3g} tokens "
        f"({out['tokens_per_param']:.1f} tokens per parameter)",
        f"loss at the choice: median {q['0.5']:.4f}, 90% interval {q['0.05']:.4f} to "
        f"{q['0.95']:.4f}",
        "90% loss interval width by source alone: "
        + ", ".join(f"{k} {v:.3g}" for k, v in out["interval_parts"].items()),
        f"each draw's own optimum N*: {100 * out['interval_prob']:.0f}% interval {lo:.3g} to "
        f"{hi:.3g}",
        f"expected regret against the per-draw optimum: {out['regret']:.2g} nats",
    ]
    lines[1:1] = _constraint_lines(out)
    wasted = out["wasted_compute"]
    if wasted is not None:
        frac = wasted["fraction_of_compute"]
        lines.append(
            f"compute wasted against each draw's own optimum: median {100 * frac['median']:.2g}% "
            f"({100 * wasted['interval_prob']:.0f}% interval {100 * frac['interval'][0]:.2g}% to "
            f"{100 * frac['interval'][1]:.2g}%)"
        )
    if out.get("at_boundary"):
        lines.append(
            "note: the choice is at the edge of the candidate range or a constraint (widen it with "
            "--n-range)"
        )
    if out.get("target_unreachable"):
        lines.append(
            "note: the target loss is out of reach at this budget (best probability "
            f"{out['risk_value']:.3g}); "
            "raise --compute or the target"
        )
    _c.print_json_or_lines(out, args.json, lines)
    return 0


def _constraint_lines(out: dict[str, Any]) -> list[str]:
    """What bounded the choice, so the printed split is read with its constraints."""
    limits = out.get("constraints") or {}
    lines = []
    if limits.get("max_n") is not None:
        lines.append(f"parameters capped at {limits['max_n']:.3g}")
    unique = limits.get("unique_tokens")
    if unique is not None:
        epochs = out["D"] / unique
        lines.append(
            f"unique tokens capped at {unique:.3g}: the choice reads them "
            + (f"{epochs:.3g} times (epochs)" if epochs > 1 else f"once ({100 * epochs:.2g}% used)")
        )
    return lines


def _decision_discrepancy(text: str):
    """--discrepancy of the decisions: auto (the fit's stored one), off or a tau."""
    if text == "calibrate":
        raise ValueError(
            "--discrepancy calibrate: decisions never refit; store one with `bayes-scaling fit` "
            "(its default) or give a tau"
        )
    return _c.parse_discrepancy(text)


def _add_discrepancy(p) -> None:
    p.add_argument(
        "--discrepancy",
        default="auto",
        help="extrapolation discrepancy in the loss draws: auto (the fit's stored one; default), "
        "off, or a fixed tau",
    )


def _wasted_compute(idata, result, args):
    """Misallocation cost of a plain allocation.

    None with repeated data or inference costs, where there is no single optimum line.
    """
    if args.inference_tokens is not None or args.unique_tokens is not None:
        return None
    from bayes_scaling import misallocation

    return misallocation.wasted_compute(
        idata,
        result,
        group=args.group,
        flops_per_token=args.flops_per_token,
        dollars_per_flop=args.dollars_per_flop,
    )


def cmd_target(args) -> int:
    from bayes_scaling import decide, inference

    idata = inference.load_fit(args.fit)
    bounds = _c.parse_pair(args.compute_bounds, "--compute-bounds", "FLOPs")
    extra: dict[str, Any] = {"compute_bounds": bounds} if bounds else {}
    result = decide.compute_for_target(
        idata,
        args.loss,
        prob=args.prob,
        flops_per_token=args.flops_per_token,
        max_n=args.max_n,
        group=args.group,
        seed=args.seed,
        discrepancy=_decision_discrepancy(args.discrepancy),
        **extra,
    )
    out = result.to_dict()
    lines = [
        f"least compute with P(loss <= {out['target_loss']}) >= {out['prob']}: "
        f"{out['compute']:.3g} FLOP",
        f"at N = {out['N']:.3g}, D = {out['D']:.3g} ({out['tokens_per_param']:.1f} tokens per "
        f"parameter); achieved probability {out['achieved_prob']:.3f}",
    ]
    _c.print_json_or_lines(out, args.json, lines)
    return 0


def cmd_batch(args) -> int:
    from bayes_scaling import decide, inference

    idata = inference.load_fit(args.fit)
    choices = decide.choose_batch_sizes(
        idata,
        max_overhead=args.max_overhead,
        prob=args.prob,
        step_cost=args.step_cost,
        example_cost=args.example_cost,
    )
    out = {k: v.to_dict() for k, v in choices.items()}
    lines = [
        f"batch size with at most {100 * args.max_overhead:.0f}% extra data over the minimum (in "
        "the fit's units of B):"
    ]
    for label, c in out.items():
        lo, hi = c["B_interval"]
        lines.append(
            f"  {label}: B = {c['B']:.4g} ({100 * c['interval_prob']:.0f}% interval {lo:.4g} to "
            f"{hi:.4g})"
        )
    _c.print_json_or_lines(out, args.json, lines)
    return 0


def _candidates(idata, args):
    """--candidates: 'grid', or the CSV with its columns renamed (--map, else the fit's mapping)."""
    if args.candidates == "grid":
        return "grid"
    from bayes_scaling import data as _data
    from bayes_scaling import inference
    from bayes_scaling.predict.points import map_points

    frame = _data.read_table(args.candidates)
    recorded = inference.fit_spec(idata)["columns"]
    return map_points(frame, _c.parse_mapping(args.map, "--map") or None, recorded)


def cmd_next_runs(args) -> int:
    from bayes_scaling import decide, inference, misallocation, next_runs

    idata = inference.load_fit(args.fit)
    result = next_runs.next_runs(
        idata,
        args.compute,
        args.budget,
        candidates=_candidates(idata, args),
        objective=args.objective,
        group=args.group,
        flops_per_token=args.flops_per_token,
        num_outcomes=args.outcomes,
        max_runs=args.max_runs,
        seed=args.seed,
    )
    out = result.to_dict()
    allocation = decide.allocate(
        idata, args.compute, group=args.group, flops_per_token=args.flops_per_token, seed=args.seed
    )
    options = {
        "group": args.group,
        "flops_per_token": args.flops_per_token,
        "dollars_per_flop": args.dollars_per_flop,
    }
    costs = [misallocation.misallocation_cost(idata, allocation, **options)]
    out["wasted_compute"] = costs[0].to_dict()
    if (args.n is None) != (args.d is None):
        raise ValueError("give both --n and --d for a planned run, or neither")
    if args.n is not None:
        costs.append(misallocation.misallocation_cost(idata, (args.n, args.d), **options))
        out["planned"] = {"N": args.n, "D": args.d, "wasted_compute": costs[1].to_dict()}
    if args.plot:
        next_runs.plot_next_runs(result, args.plot)
    lines = [
        f"next runs for the decision at {args.compute:.3g} FLOP, budget {args.budget:.3g} FLOP, "
        f"objective {out['objective']} (now {out['baseline']:.3g})"
    ]
    lines += [
        f"  N = {c['N']:.3g}, D = {c['D']:.3g}, cost {c['cost']:.2g}: gain {c['gain']:.3g} "
        f"({c['gain_per_flop']:.3g} per FLOP)"
        for c in out["candidates"][: args.top]
    ]
    lines.append(
        f"greedy batch: {len(out['batch'])} runs, {out['batch_cost']:.3g} FLOP, expected gain "
        f"{out['batch_gain']:.3g}"
    )
    lines += [
        f"  N = {b['N']:.3g}, D = {b['D']:.3g}, cost {b['cost']:.2g}, marginal gain {b['gain']:.3g}"
        for b in out["batch"]
    ]
    lines += [f"misallocation: {cost.describe()}" for cost in costs]
    _c.print_json_or_lines(out, args.json, lines)
    return 0


def register(sub) -> None:
    """Add the allocate, target and batch commands."""
    p = sub.add_parser(
        "allocate", help="split a FLOP budget between parameters and tokens under uncertainty"
    )
    p.add_argument("fit", help="netCDF file written by `bayes-scaling fit`")
    p.add_argument("--compute", type=float, required=True, help="training FLOP budget")
    p.add_argument(
        "--risk",
        default="expected",
        help="expected | quantile:Q | cvar:L | prob_below:TARGET (default expected)",
    )
    p.add_argument("--max-n", type=float, help="cap on parameters (memory, serving)")
    p.add_argument(
        "--unique-tokens", type=float, help="cap on unique tokens; more tokens are repeats"
    )
    p.add_argument(
        "--repetition",
        choices=["muennighoff"],
        help="with a chinchilla fit and --unique-tokens: value repeats with Muennighoff et al.'s "
        "decay constants",
    )
    p.add_argument(
        "--inference-tokens",
        type=float,
        help="expected inference tokens: adds 2 N D_inference FLOP to the cost",
    )
    p.add_argument("--dollars-per-flop", type=float, help="report the cost in dollars")
    p.add_argument("--flops-per-token", type=float, default=6.0)
    p.add_argument("--group", help="group of a hierarchical fit, or 'new'")
    p.add_argument(
        "--candidates", type=int, default=512, help="candidate sizes on the iso-compute line"
    )
    p.add_argument(
        "--n-range", help="low,high parameters searched (default: from the draws' optima)"
    )
    p.add_argument("--seed", type=_c.seed_type, default=0)
    _add_discrepancy(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="JSON with keys N, D, tokens_per_param, loss_quantiles, n_opt_interval, regret, "
        "interval_parts, ...",
    )
    p.set_defaults(func=cmd_allocate)

    _register_target(sub)
    _register_batch(sub)


def _register_target(sub) -> None:
    p = sub.add_parser(
        "target", help="least compute that reaches a target loss with a given probability"
    )
    p.add_argument("fit")
    p.add_argument("--loss", type=float, required=True, help="target loss")
    p.add_argument("--prob", type=float, default=0.9, help="required probability (default 0.9)")
    p.add_argument("--max-n", type=float)
    p.add_argument("--flops-per-token", type=float, default=6.0)
    p.add_argument("--group")
    p.add_argument("--compute-bounds", help="low,high FLOPs searched (default 1e6,1e40)")
    p.add_argument("--seed", type=_c.seed_type, default=0)
    _add_discrepancy(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_target)


def _register_batch(sub) -> None:
    p = sub.add_parser("batch", help="batch size per group from a batch_steps fit")
    p.add_argument(
        "fit", help="a fit of the batch_steps law (e.g. zhang-critical-batch-size --group group)"
    )
    p.add_argument(
        "--max-overhead",
        type=float,
        default=0.2,
        help="cap on extra tokens over the minimum, as a fraction (default 0.2)",
    )
    p.add_argument(
        "--prob",
        type=float,
        help="require the cap to hold with this probability (default: for the median)",
    )
    p.add_argument(
        "--step-cost",
        type=float,
        help="cost per optimiser step (with --example-cost: minimise total cost instead)",
    )
    p.add_argument("--example-cost", type=float, help="cost per training example")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_batch)


def register_next_runs(sub) -> None:
    """Add the next-runs command."""
    p = sub.add_parser(
        "next-runs",
        help="which small runs would most improve the allocation at a target compute, and the "
        "cost of a wrong allocation",
    )
    p.add_argument("fit")
    p.add_argument(
        "--compute", type=float, required=True, help="target compute of the decision, FLOPs"
    )
    p.add_argument(
        "--budget", type=float, required=True, help="FLOPs available for new runs (6 N D each)"
    )
    p.add_argument(
        "--candidates",
        default="grid",
        help="'grid' (IsoFLOP levels up to the budget) or a CSV with columns N, D (or the "
        "fit's own names for them)",
    )
    p.add_argument(
        "--map",
        help="rename the candidates' columns to canonical names, e.g. params=N,tokens=D "
        "(default: the mapping the fit was given)",
    )
    p.add_argument("--objective", default="regret", choices=["regret", "width", "n_opt_width"])
    p.add_argument(
        "--outcomes", type=int, default=128, help="simulated outcomes per candidate (default 128)"
    )
    p.add_argument(
        "--max-runs", type=int, default=8, help="most runs in the greedy batch (default 8)"
    )
    p.add_argument("--top", type=int, default=10, help="candidates printed (default 10)")
    p.add_argument(
        "--n", type=float, help="a planned run's parameters, for its misallocation cost (with --d)"
    )
    p.add_argument("--d", type=float, help="a planned run's tokens (with --n)")
    p.add_argument(
        "--dollars-per-flop",
        type=float,
        help="price of a FLOP for the dollar cost of misallocation",
    )
    p.add_argument("--flops-per-token", type=float, default=6.0)
    p.add_argument("--group")
    p.add_argument("--plot", help="write the expected-gain figure here (PNG/SVG/PDF)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--json",
        action="store_true",
        help="JSON with keys candidates, batch, wasted_compute, planned, ...",
    )
    p.set_defaults(func=cmd_next_runs)
