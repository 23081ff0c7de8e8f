"""Security and robustness: no code from user strings, nothing overwritten or lost, clear errors.

Each test is a reproduction of a defect found by probing the command line and the API, now a
clean refusal, a correct result or a loud warning.
"""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_scaling import _files, _jaxcache, cli, compare, inference
from bayes_scaling.data import DataError, read_table, rename_columns, select_rows, validate
from bayes_scaling.datasets import load_dataset
from bayes_scaling.laws import get_law

HERE = Path(__file__).resolve().parent
CHINCHILLA = get_law("chinchilla")


def run(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "bayes_scaling.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=HERE, **kwargs)


@pytest.fixture(scope="module")
def demo_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("robust") / "demo.csv"
    load_dataset("demo")[["N", "D", "C", "loss"]].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def laplace_fit(demo_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("robust-fit") / "fit.nc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = inference.fit(pd.read_csv(demo_csv), "chinchilla", method="laplace", num_chains=2, num_samples=200)
    inference.save_fit(idata, out)
    return out


# --------------------------------------------------------------------------- 1 code execution


@pytest.mark.parametrize("query", [
    "@os.system('touch PWNED') == 0",
    "__import__('os').system('touch PWNED') == 0",
    "N.__class__.__bases__ == 0",
    "N.apply(print) == 0",
    "N[0] > 1",
    "(lambda: 1)() == 1",
    "[x for x in N] == 1",
    "N > 1\x00",  # a null byte: Python's parser raises ValueError, the query a DataError
])
def test_query_refuses_anything_but_comparisons(query, tmp_path):
    df = pd.DataFrame({"N": [1e8, 2e8], "loss": [3.0, 2.9]})
    with pytest.raises(DataError, match="not allowed|not a valid expression"):
        select_rows(df, query)
    assert not (tmp_path / "PWNED").exists()


def test_query_language_selects_like_pandas():
    df = pd.DataFrame({"N": [1e8, 1e9, 2e9, 4e9], "dataset": ["rw", "c4", "rw", "a&b"], "odd name": [1, 2, 3, 4]})
    cases = [
        "dataset == 'rw' and N > 1e8",
        "N >= 1e9 & dataset != 'c4'",
        "`odd name` >= 2 | N < 2e8",
        "dataset in ['c4', 'a&b']",
        "dataset not in ['rw']",
        "not (N < 1e9)",
        "1e8 < N <= 2e9",
        "N / 1e9 * 2 >= 4",
        "dataset == 'a&b'",
    ]
    for q in cases:
        assert select_rows(df, q).index.tolist() == df.query(q).index.tolist(), q
    with pytest.raises(DataError, match="selects no rows"):
        select_rows(df, "N > 1e12")
    with pytest.raises(DataError, match="'tokens', which is not a column"):
        select_rows(df, "tokens > 1")


def test_cli_query_runs_no_code(demo_csv, tmp_path):
    marker = tmp_path / "PWNED"
    r = run("fit", str(demo_csv), "--query", f"@os.system('touch {marker}') == 0", "--out", str(tmp_path / "q.nc"))
    assert r.returncode == 2 and r.stderr.startswith("error: --query")
    assert not marker.exists() and not (tmp_path / "q.nc").exists()


# --------------------------------------------------------------------------- 2, 3 outputs


def test_out_checks_before_any_work(demo_csv, tmp_path):
    victim = tmp_path / "victim.csv"
    victim.write_bytes(demo_csv.read_bytes())
    before = victim.read_bytes()
    # a budget that would sample for minutes: the refusal must come first
    slow = ["--chains", "4", "--warmup", "5000", "--samples", "5000"]
    for out, word in ((victim, "is the input file"), (tmp_path, "is a directory"), (tmp_path / "ro" / "f.nc", "not writable")):
        if word == "not writable":
            (tmp_path / "ro").mkdir()
            os.chmod(tmp_path / "ro", 0o500)
            if os.access(tmp_path / "ro", os.W_OK):  # root ignores permissions
                continue
        t0 = time.perf_counter()
        r = run("fit", str(victim), *slow, "--out", str(out))
        assert r.returncode == 2 and word in r.stderr and str(out) in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and time.perf_counter() - t0 < 20
    assert victim.read_bytes() == before


def test_existing_output_needs_force_and_keeps_umask(demo_csv, tmp_path):
    out = tmp_path / "fit.nc"
    out.write_text("keep me")
    r = run("fit", str(demo_csv), "--method", "laplace", "--out", str(out))
    assert r.returncode == 2 and "--force" in r.stderr and out.read_text() == "keep me"
    # what is tested is the file, not the fit: no calibration refits
    r = run("fit", str(demo_csv), "--method", "laplace", "--discrepancy", "off", "--out", str(out), "--force")
    assert r.returncode == 0, r.stderr
    assert inference.load_fit(out).posterior.attrs["law"] == "chinchilla"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bayes-scaling-")]


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), _files.atomic_path(target) as tmp:
        Path(tmp).write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


# --------------------------------------------------------------------------- 4 interrupts


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_fit_stops_at_once(demo_csv, tmp_path, sig, code):
    out = tmp_path / "fit.nc"
    with subprocess.Popen(
        [sys.executable, "-m", "bayes_scaling.cli", "fit", str(demo_csv), "--chains", "2", "--warmup", "20000",
         "--samples", "20000", "--seed", "11", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE,
    ) as proc:
        time.sleep(4.0)  # inside start-up, compilation or sampling
        proc.send_signal(sig)
        t0 = time.perf_counter()
        _, err = proc.communicate(timeout=30)
    assert time.perf_counter() - t0 < 2.0
    assert proc.returncode == code and "interrupted" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_sigterm_while_saving_leaves_no_file(tmp_path):
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from bayes_scaling import _files, cli
        cli._exit_on_signals()
        with _files.atomic_path({str(tmp_path / 'fit.nc')!r}) as tmp:
            Path(tmp).write_text("partial")
            print("writing", flush=True)
            time.sleep(60)
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, cwd=HERE) as proc:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 143
    assert list(tmp_path.iterdir()) == []


def test_main_restores_signal_handlers(capsys):
    before = signal.getsignal(signal.SIGINT)
    assert cli.main(["laws"]) == 0
    assert signal.getsignal(signal.SIGINT) is before
    capsys.readouterr()


# --------------------------------------------------------------------------- 5 silent nonsense


@pytest.mark.parametrize("values, word", [
    ([True, False, True], "boolean"),
    (pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]), "date/time"),
    (pd.to_timedelta([1, 2, 3], unit="D"), "time-interval"),
    (np.array([1e9 + 1j, 2e9, 4e9]), "complex"),
    (pd.Series([1e9, True, 4e9], dtype=object), "bool"),
])
def test_non_real_columns_are_refused(values, word):
    df = pd.DataFrame({"N": [1e8, 2e8, 4e8], "D": values, "loss": [3.0, 2.9, 2.8]})
    with pytest.raises(DataError, match=f"'D' must hold real numbers.*{word}"):
        validate(df, CHINCHILLA)


def test_suspicious_data_warn():
    df = load_dataset("demo")[["N", "D", "loss"]]
    with pytest.warns(UserWarning, match="outside the usual 0.001-20 nats"):
        validate(df.assign(loss=df.loss * 50), CHINCHILLA)
    with pytest.warns(UserWarning, match="outside the usual"):
        validate(df.assign(loss=1e-45), CHINCHILLA)
    with pytest.warns(UserWarning, match="2 runs for a law with 5 parameters"):
        inference.fit(df.iloc[:2], "chinchilla", method="laplace", num_chains=1, num_samples=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate(df, CHINCHILLA)  # plausible data: no warning


def test_prior_dominated_posterior_warns():
    df = load_dataset("demo")[["N", "D", "loss"]].assign(loss=1e-45)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        inference.fit(df, "chinchilla", method="laplace", num_chains=2, num_samples=500)
    assert any("close to the prior" in str(w.message) for w in seen)


def test_informative_data_do_not_warn_prior_dominated():
    df = load_dataset("demo")[["N", "D", "loss"]]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        inference.fit(df, "chinchilla", method="laplace", num_chains=2, num_samples=500)
    assert not any("close to the prior" in str(w.message) for w in seen)


# --------------------------------------------------------------------------- 7 messages


def test_messages_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        read_table(tmp_path)
    df = pd.DataFrame({"params": [1.0], "N": [2.0]})
    with pytest.raises(DataError, match="params=N would make a second column named 'N'"):
        rename_columns(df, {"params": "N"})
    assert list(rename_columns(df, {"params": "N", "N": "U"}).columns) == ["N", "U"]


def test_fit_without_priors_attribute(laplace_fit):
    idata = inference.load_fit(laplace_fit)
    del idata.posterior.attrs["priors"]
    with pytest.raises(ValueError, match="no 'priors' attribute"):
        inference.fit_spec(idata)


def test_cli_option_messages(laplace_fit, tmp_path, capsys):
    points = tmp_path / "p.csv"
    pd.DataFrame({"N": [1e9], "D": [2e10]}).to_csv(points, index=False)
    assert cli.main(["predict", str(laplace_fit), "--points", str(points), "--quantiles", "a",
                     "--out", str(tmp_path / "o.csv")]) == 2
    assert "--quantiles must be comma-separated" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["fit", "x.csv", "--seed", "99999999999999999999", "--out", str(tmp_path / "s.nc")])
    assert exc.value.code == 2
    assert "--seed: must be between 0 and 2**63 - 1" in capsys.readouterr().err
    parser = cli.build_parser()
    assert parser.parse_args(["allocate", "f.nc", "--compute", "1e21", "--n-range", "1e8,1e10"]).n_range == "1e8,1e10"
    assert parser.parse_args(["target", "f.nc", "--loss", "2", "--compute-bounds", "1e18,1e25"]).compute_bounds


def test_compare_split_on_compute_when_no_law_reads_it():
    df = load_dataset("demo")[["N", "D", "C", "loss"]]
    frame, _ = compare._common_frame(df, [get_law("chinchilla"), get_law("kaplan")], group=None, pooling=None,
                                     columns=None, derive_tokens=False, derive_compute=True, flops_per_token=6.0)
    assert "C" in frame.columns
    mask = compare.future_split(frame, "C<=1e20")
    assert mask.sum() == (df.C <= 1e20).sum()


# --------------------------------------------------------------------------- 9 cache healing


def test_heal_removes_truncated_cache_entries(tmp_path):
    good = zlib.compress(b"x" * 10_000)
    (tmp_path / "jit_a-1-cache").write_bytes(good)
    (tmp_path / "jit_b-2-cache").write_bytes(good[: len(good) // 2])
    (tmp_path / "jit_b-2-atime").write_bytes(b"12345678")
    (tmp_path / "jit_c-3-cache").write_bytes(good[:10])  # fresh: may still be being written
    old = time.time() - 3600
    for name in ("jit_a-1-cache", "jit_b-2-cache"):
        os.utime(tmp_path / name, (old, old))
    assert _jaxcache.heal(tmp_path) == ["jit_b-2-cache"]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".bayes-scaling-checked.json", "jit_a-1-cache", "jit_c-3-cache"]
    assert _jaxcache.heal(tmp_path) == []


def test_truncated_jax_cache_entry_is_replaced(tmp_path):
    script = textwrap.dedent(f"""
        import warnings
        from bayes_scaling import _jaxcache
        _jaxcache.enable({str(tmp_path)!r})
        import jax, jax.numpy as jnp
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            jax.jit(lambda x: jnp.sin(x) * 3.0 + x ** 2)(jnp.arange(5.0)).block_until_ready()
        print(sum("persistent compilation cache" in str(w.message) for w in seen))
    """)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}

    def compile_once():
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=HERE, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        return int(r.stdout.split()[-1])

    assert compile_once() == 0
    entries = {p: p.read_bytes() for p in tmp_path.glob("jit_*-cache")}
    assert entries
    old = time.time() - 3600
    for path, content in entries.items():
        path.write_bytes(content[: len(content) // 3])
        os.utime(path, (old, old))
    assert compile_once() == 0  # healed before JAX read it: no read error, recompiled and rewritten
    for path, content in entries.items():
        assert path.read_bytes() != content[: len(content) // 3]
        _jaxcache._decompressor()(path.read_bytes())


# --------------------------------------------------------------------------- 10 broken pipe


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_summary_into_a_closed_pipe(laplace_fit, unbuffered):
    # buffered output (the default outside CI shells) meets the closed pipe only when it is
    # flushed, possibly at interpreter exit; unbuffered output meets it at the first write
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env.update({"PYTHONUNBUFFERED": unbuffered} if unbuffered else {})
    with subprocess.Popen([sys.executable, "-m", "bayes_scaling.cli", "summary", str(laplace_fit)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=HERE, env=env) as proc:
        proc.stdout.close()
        err = proc.stderr.read().decode()
        proc.wait(timeout=120)
    assert "Broken pipe" not in err and "Traceback" not in err
    assert proc.returncode == 0
