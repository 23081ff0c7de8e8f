"""The documentation: it builds with warnings as errors, covers every law and command, and its
Python examples run.

Each page's ```python blocks are joined into one script (the blocks share a namespace, as a
reader would run them top to bottom) and run in a fresh interpreter in a scratch directory.
A number the prose quotes from the page's own output is checked there: an HTML comment
``<!-- check: EXPR -->`` (invisible on the rendered page) after the block that computes it
becomes ``assert EXPR`` at that point of the script, so a page cannot drift from what its code
prints.
The examples keep their sampler budgets small and visible (``num_samples=...`` on every fit),
which is checked here so the docs stay cheap to run. Tutorials on the published datasets fit
several hundred runs several times; they carry the ``slow`` marker.
"""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
CHECK = re.compile(r"<!-- check: (.*?) -->", re.DOTALL)
MAX_SAMPLES = 300


def _blocks(page: str) -> list[str]:
    return FENCE.findall((DOCS / page).read_text(encoding="utf-8"))


def _needs_data(page: str) -> bool:
    """Whether a page loads a dataset that is not packaged (it needs the shared data directory)."""
    from bayes_scaling.datasets import dataset_status

    text = (DOCS / page).read_text(encoding="utf-8")
    names = re.findall(r'load_dataset\("([^"]+)"', text)
    return any(not dataset_status(name)["packaged"] for name in names)


def test_pages_found():
    assert {"index.md", "getting-started.md", "laws.md", "priors.md", "cli.md", "reports.md",
            "tutorials/extrapolation.md", "tutorials/comparing.md", "tutorials/decisions.md"} <= set(PAGES)


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="MkDocs is in the docs and test extras: pip install '.[docs]'")
    site = tmp_path / "site"
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                          str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    for page in PAGES:
        assert (site / page.replace(".md", ".html")).is_file(), page
    # offline: no page loads a script, style sheet or image from the network
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert not re.search(r'(src|href)="(https?:)?//[^"]*\.(js|css|png|svg|woff2?)', text), html
        assert not re.search(r'src="(https?:)?//', text), html


def test_law_reference_covers_every_law():
    from bayes_scaling.laws import LAWS

    text = (DOCS / "laws.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (\S+)\s*$", text, re.MULTILINE))
    missing = [name for name in LAWS if name not in headings and not name.endswith("_doc_example")]
    assert not missing, f"docs/laws.md has no section for {missing}"
    for name, spec in LAWS.items():
        if name in headings:
            section = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
            absent = [p for p in spec.param_names if f"`{p}`" not in section]
            assert not absent, f"docs/laws.md, section {name}: parameters {absent} not described"
            assert re.search(r"arXiv:\d{4}\.\d{4,5}", section), f"docs/laws.md, section {name}: no paper"


def test_cli_reference_covers_every_command_and_option():
    from bayes_scaling.cli import build_parser

    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    problems = []
    for name, command in sub.choices.items():
        if not re.search(rf"^## {re.escape(name)}\s*$", text, re.MULTILINE):
            problems.append(f"command '{name}' has no '## {name}' section")
            continue
        section = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in command._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help" and option not in section:
                    problems.append(f"'{name} {option}' is not documented")
    assert not problems, "docs/cli.md is out of date: " + "; ".join(problems)


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)])
def test_examples_keep_their_sampler_budget_visible_and_small(page):
    code = "\n".join(_blocks(page))
    fits = re.findall(r"(?<![\w.])fit\(", code) + re.findall(r"(?<![\w.])fit_law\(", code)
    budgets = [int(v) for v in re.findall(r"num_samples=(\d+)", code)]
    assert len(budgets) >= len(fits), f"{page}: every fit(...) should pass num_samples= (found {len(fits)} fits, {len(budgets)} budgets)"
    assert all(b <= MAX_SAMPLES for b in budgets), f"{page}: num_samples above {MAX_SAMPLES}: {budgets}"


def _script(page: str) -> str:
    """The page's python blocks in order, each ``<!-- check: EXPR -->`` an assert where it stands."""
    text = (DOCS / page).read_text(encoding="utf-8")
    pieces = sorted([(m.start(), "block", m.group(1)) for m in FENCE.finditer(text)]
                    + [(m.start(), "check", m.group(1)) for m in CHECK.finditer(text)])
    parts = ["import matplotlib", "matplotlib.use('Agg')"]
    blocks = 0
    for _, kind, body in pieces:
        if kind == "check":
            expr = " ".join(body.split())
            parts.append(f"assert {expr}, {f'docs/{page}: a quoted number no longer holds: {expr}'!r}")
            continue
        blocks += 1
        parts.append(f"print('--- block {blocks} of {page}', flush=True)")
        parts.append(body)
    return "\n".join(parts) + "\n"


def test_checks_of_quoted_numbers_become_asserts():
    script = _script("tutorials/extrapolation.md")
    assert "assert " in script and "a quoted number no longer holds" in script
    compile(script, "example.py", "exec")  # every check is a valid expression


def _page_params():
    out = []
    for page in PAGES:
        if not _blocks(page):
            continue
        marks = [pytest.mark.slow] if page.startswith("tutorials/") else []
        out.append(pytest.param(page, marks=marks, id=page))
    return out


@pytest.mark.parametrize("page", _page_params())
def test_examples_run(page, tmp_path, request):
    env = dict(os.environ)
    if _needs_data(page):
        env["BAYES_SCALING_DATA"] = str(request.getfixturevalue("shared_data"))
    env.setdefault("JAX_PLATFORMS", "cpu")
    env["MPLBACKEND"] = "Agg"
    flags = env.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=2".strip()
    script = tmp_path / "example.py"
    script.write_text(_script(page), encoding="utf-8")
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=1800, check=False)
    if run.returncode != 0:
        ran = re.findall(r"--- block (\d+) of", run.stdout)
        where = f"block {ran[-1]}" if ran else "before the first block"
        pytest.fail(f"docs/{page}: the example failed in {where}:\n{run.stdout[-3000:]}\n{run.stderr[-4000:]}")
    assert "Traceback" not in run.stderr
