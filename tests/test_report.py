"""The report: content, self-containment, Markdown output, verdicts, and the CLI commands."""

import base64
import dataclasses
import json
import re

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from fits_for_reports import demo_fit, synthetic_fit

from bayes_scaling import inference, report
from bayes_scaling.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def synthetic_report():
    return report.build_report(synthetic_fit(), compute=1e24)


def _images(html_text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img[^>]*src="data:image/png;base64,([^"]+)"', html_text)]


def test_sections_and_figures(synthetic_report):
    titles = [s.title for s in synthetic_report.sections]
    assert titles[:2] == ["What was fitted", "At a glance"]
    for needed in ("Data and fitted curves", "Extrapolation", "Compute-optimal scaling",
                   "Allocation at C = 1e+24 FLOP", "Parameter posteriors", "Diagnostics"):
        assert needed in titles
    names = [f.name for f in synthetic_report.figures]
    assert len(names) >= 6 and len(set(names)) == len(names)
    assert all(f.png.startswith(PNG) for f in synthetic_report.figures)


def test_html_is_self_contained(synthetic_report):
    text = synthetic_report.to_html()
    images = _images(text)
    assert len(images) == len(synthetic_report.figures) >= 4
    assert all(img.startswith(PNG) for img in images)
    assert not re.search(r'(src|href)="(https?:)?//', text.replace('href="#', ""))
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert text.count("<section") == len(synthetic_report.sections)


def test_numbers_in_the_report(synthetic_report):
    text = synthetic_report.to_html()
    # the exponent of the true parameters is 0.366 / (0.348 + 0.366) = 0.513
    assert re.search(r"compute-optimal exponent a</td><td>0\.51\d", text)
    # the allocation table has both risk measures
    assert "<td>expected</td>" in text and "<td>cvar:0.9</td>" in text
    # synthetic draws are independent: every diagnostic is fine
    assert "the sampler worked" in text


def test_markdown_writes_figures_beside_it(tmp_path, synthetic_report):
    path = synthetic_report.write_markdown(tmp_path / "fit-report.md")
    text = path.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len(synthetic_report.figures)
    for link in links:
        assert link.startswith("fit-report_files/")
        assert (tmp_path / link).read_bytes().startswith(PNG)
    assert "| parameter | mean |" in text
    assert text.startswith("# Scaling-law report: chinchilla")


def test_write_report_picks_the_format_from_the_suffix(tmp_path):
    fit = synthetic_fit()
    md = report.write_report(fit, tmp_path / "r.md", sections=["parameters"])
    assert md.read_text().startswith("# ") and (tmp_path / "r_files").is_dir()
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        report.write_report(fit, tmp_path / "r.pdf", format="pdf")
    with pytest.raises(ValueError, match="compute must be a positive number"):
        report.build_report(fit, compute=-1.0)
    with pytest.raises(ValueError, match=r"unknown report sections \['fan'\]"):
        report.build_report(fit, sections=["fan"])


@pytest.mark.parametrize("value, status", [(1.0, "ok"), (1.01, "ok"), (1.03, "warn"), (1.2, "bad"),
                                           (float("nan"), "warn")])
def test_rhat_verdict(value, status):
    assert report.rhat_verdict(value)[0] == status


@pytest.mark.parametrize("value, status", [(2000, "ok"), (400, "ok"), (150, "warn"), (20, "bad")])
def test_ess_verdict(value, status):
    assert report.ess_verdict(value)[0] == status


def test_divergence_verdict_says_what_to_do():
    assert report.divergence_verdict(0, 4000)[0] == "ok"
    status, text = report.divergence_verdict(3, 4000)
    assert status == "warn" and "--target-accept" in text
    assert report.divergence_verdict(100, 4000)[0] == "bad"
    # the advice follows the target the fit ran at
    assert "--target-accept 0.99 (this fit used 0.95)" in report.divergence_verdict(3, 4000, 0.95)[1]
    text = report.divergence_verdict(3, 4000, 0.99)[1]
    assert "already used --target-accept 0.99" in text and "0.95" not in text


def test_a_failed_fit_is_called_out():
    """Chains that disagree and divergences: the verdict says not to trust the numbers."""
    import copy

    fit = copy.deepcopy(synthetic_fit())
    alpha = fit.posterior["alpha"].values
    alpha[1] += 0.1  # the second chain sits elsewhere
    fit.sample_stats["diverging"].values[0, :30] = True
    text = report.build_report(fit, compute=1e23, sections=["diagnostics"]).to_html()
    assert "do not trust these numbers yet" in text
    assert "chains disagree" in text
    assert "30 divergent transitions" in text


def test_backtest_section(tmp_path):
    from test_plots import BACKTEST

    bt = dict(BACKTEST, law="chinchilla", split="C<=1e21", n_train=30, crps=0.012,
              baseline={"median_are": 0.02, "max_are": 0.05, "method": "Huber", "params": {"E": 1.8}},
              without_discrepancy={"coverage_90": 0.4}, discrepancy={"enabled": True, "method": "fixed",
                                                                     "tau_median": 0.01})
    path = tmp_path / "bt.json"
    path.write_text(json.dumps(bt))
    r = report.build_report(synthetic_fit(), backtest=path, sections=["backtest"])
    section = next(s for s in r.sections if s.title == "Backtest")
    assert any(isinstance(b, report.FigureBlock) for b in section.blocks)
    text = r.to_html()
    assert "overconfident: only 50% of held-out runs" in text and "only 2 held-out runs" in text
    assert "<th>point fit</th>" in text and "<th>without discrepancy</th>" in text
    assert "fixed, tau median 0.01" in text
    assert "chains disagree" not in text
    # a discrepancy learned from a refit whose chains disagree says so in the setting
    cuts = [{"cut": 0.7, "n_past": 138, "max_rhat": 1.87, "min_ess": 2.9, "divergences": 0},
            {"cut": 0.8, "n_past": 158, "max_rhat": 1.01, "min_ess": 300.0, "divergences": 0}]
    bt["discrepancy"] = {"enabled": True, "method": "leave-future-out", "tau_median": 0.0114,
                         "details": {"cuts": cuts}}
    text = report.build_report(synthetic_fit(), backtest=bt, sections=["backtest"]).to_html()
    assert "discrepancy refits whose chains disagree" in text
    assert "at cut 0.7 on 138 runs, R-hat 1.87 and bulk ESS 3: tau may move with the seed" in text
    assert "cut 0.8" not in text
    assert "directions beyond the runs" not in text  # neither record says how runs left
    # held-out runs that leave in a direction no pseudo-future did: the setting says so
    for cut, direction in zip(cuts, ({"N*D": 60}, {"N*D": 40})):
        cut["beyond_in"] = direction
    bt["held_out_beyond_in"] = {"D": 352}
    text = report.build_report(synthetic_fit(), backtest=bt, sections=["backtest"]).to_html()
    assert "directions beyond the runs" in text
    assert "held-out runs leave the training runs in D (352)" in text and "N*D (100)" in text
    # a report in another shape still shows its numbers
    other = report.build_report(synthetic_fit(), backtest={"rmse": 0.1}, sections=["backtest"]).to_html()
    assert "<td>rmse</td>" in other
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="is not JSON"):
        report.build_report(synthetic_fit(), backtest=bad)


@pytest.mark.parametrize("coverage, status", [(0.9, "ok"), (0.7, "warn"), (0.3, "bad")])
def test_coverage_verdict(coverage, status):
    assert report.coverage_verdict(coverage, 40)[0] == status


def test_extrapolation_says_whether_a_discrepancy_is_included():
    fit = synthetic_fit()
    plain = report.build_report(fit, compute=1e24, sections=["extrapolation"]).to_html()
    assert "No extrapolation discrepancy is included" in plain
    assert "<code>--discrepancy auto</code>" in plain
    wide = report.build_report(fit, compute=1e24, discrepancy=0.02, sections=["extrapolation"]).to_html()
    assert "<th>with discrepancy 90%</th>" in wide and "extrapolation discrepancy</strong> (fixed" in wide
    assert "It was learned from runs beyond" not in wide  # a fixed tau: learned from nothing
    from bayes_scaling import predict

    box = predict.Discrepancy.fixed(0.02, "chinchilla", predict.fit_data(fit))
    cuts = [{"cut": 0.7, "beyond_in": {"N*D": 80}}, {"cut": 0.8, "beyond_in": {"N*D": 40, "D": 3}}]
    learned = dataclasses.replace(box, method="leave-future-out", details={"cuts": cuts})
    text = report.build_report(fit, compute=1e24, discrepancy=learned, sections=["extrapolation"]).to_html()
    assert "It was learned from runs beyond their pseudo-past in N*D (120), D (3)" in text


def test_grouped_report_has_contrasts_and_per_group_rows():
    r = report.build_report(synthetic_fit(grouped=True), compute=1e23, risks=("expected",),
                            sections=["extrapolation", "allocation", "contrasts"])
    titles = [s.title for s in r.sections]
    assert "Group contrasts" in titles
    text = r.to_html()
    assert "<td>baseline</td>" in text and "<td>worse</td>" in text
    assert "Group &#x27;new&#x27; is a group not in the data" in text
    # the contrast table: worse has E 3% higher, so E[baseline] - E[worse] is about -0.055
    row = re.search(r"<td>E</td><td>baseline - worse</td><td>(-[0-9.]+)</td>", text)
    assert row and abs(float(row.group(1)) + 0.03 * 1.817) < 0.005
    assert "<td>loss@C=1e+23</td>" in text
    # the summary's headline rows say which group they are of (the first; the sections show all)
    assert re.search(r"<td>loss at C = 1e\+23 FLOP, group baseline</td>", text)
    assert re.search(r"<td>best split of 1e\+23 FLOP \(expected\), group baseline</td>", text)


# --------------------------------------------------------------------------- real fit, CLI


@pytest.fixture(scope="module")
def demo_fit_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "demo.nc"
    inference.save_fit(demo_fit(), path)
    return path


def test_cli_report_html_and_md(tmp_path, demo_fit_file, capsys):
    out = tmp_path / "report.html"
    assert main(["report", str(demo_fit_file), "--data", "demo", "--compute", "1e23", "--out", str(out)]) == 0
    text = out.read_text()
    assert len(_images(text)) >= 4
    assert "wrote" in capsys.readouterr().err
    # a real fit carries a log likelihood: the LOO paragraph is there
    assert "PSIS-LOO" in text
    md = tmp_path / "report.md"
    assert main(["report", str(demo_fit_file), "--format", "md", "--risk", "quantile:0.9", "--out", str(md)]) == 0
    assert "quantile:0.9" in md.read_text()
    assert len(list((tmp_path / "report_files").glob("*.png"))) >= 4


def test_cli_plot(tmp_path, demo_fit_file):
    for kind in ("fan", "frontier"):
        out = tmp_path / f"{kind}.png"
        assert main(["plot", str(demo_fit_file), "--kind", kind, "--out", str(out)]) == 0
        assert out.read_bytes().startswith(PNG)
    out = tmp_path / "fan.svg"
    assert main(["plot", str(demo_fit_file), "--discrepancy", "0.01", "--out", str(out)]) == 0
    assert out.read_text().lstrip().startswith("<?xml")


def test_cli_report_errors(tmp_path, demo_fit_file, capsys):
    assert main(["report", str(tmp_path / "missing.nc"), "--out", str(tmp_path / "r.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(demo_fit_file), "--risk", ",", "--out", str(tmp_path / "r.html")]) == 2
    assert "names no risk measure" in capsys.readouterr().err
    assert main(["report", str(demo_fit_file), "--backtest", str(tmp_path / "none.json"),
                 "--out", str(tmp_path / "r.html")]) == 2
    assert "backtest file" in capsys.readouterr().err
    assert main(["report", str(demo_fit_file), "--discrepancy", "lots", "--out", str(tmp_path / "r.html")]) == 2
    assert "--discrepancy must be recorded, calibrate, off or a number" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_real_fit_numbers_are_plausible():
    """The tiny demo fit recovers the simulation's exponent to within its posterior spread."""
    from bayes_scaling import plots

    a = plots.compute_optimal_exponent(demo_fit())
    truth = 0.366 / (0.348 + 0.366)
    assert abs(np.median(a) - truth) < 4 * a.std() + 0.01


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_unreadable_priors_fail_loudly(damage):
    fit = synthetic_fit().copy()
    fit.posterior.attrs = dict(fit.posterior.attrs)
    if damage == "corrupt":
        fit.posterior.attrs["priors"] = "{not json"
        match = r"metadata .* is unreadable \(JSONDecodeError"
    else:
        del fit.posterior.attrs["priors"]
        match = r"metadata .* is missing 'priors'.*figures \(fit curves"
    with pytest.raises(ValueError, match=match):
        report.build_report(fit, compute=1e23, sections=["allocation"])


def test_allocation_rows_with_heavy_tailed_noise():
    """nu near 1: each risk measure gets its own finite row (one draw's noise decided them all)."""
    fit = synthetic_fit(grouped=True).copy()
    fit.posterior["nu"] = fit.posterior["nu"] * 0.1  # 0.8 to 0.9
    r = report.build_report(fit, compute=1e23, risks=("expected", "cvar:0.9"), sections=["allocation"])
    table = next(b for s in r.sections if s.title.startswith("Allocation") for b in s.blocks
                 if isinstance(b, report.Table))
    assert len(table.rows) == 6  # baseline, worse, new x two risks
    for row in table.rows:
        assert "nan" not in " ".join(row) and float(row[5]) < 3.0
    for mean_row, tail_row in zip(table.rows[::2], table.rows[1::2]):
        assert mean_row[1] == "expected" and tail_row[1] == "cvar:0.9"
        assert mean_row[2:] != tail_row[2:]
