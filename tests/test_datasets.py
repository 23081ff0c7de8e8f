"""Tests of bayes_scaling.datasets: manifest, packaged tables, loading, checksums, downloads, demo.

The permissively licensed datasets ship in the package and are read from it. ``epoch-chinchilla``
(no license) is read from ``BAYES_SCALING_DATA`` when set, else ``../shared/datasets`` beside the
checkout; tests that need it skip when it is absent, or fail when ``CI`` is set. No test touches the
network: downloads use ``file://`` URLs (of a synthetic stand-in where the real file is absent), and
``BAYES_SCALING_OFFLINE`` is set for every test.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import json
import os
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomllib
from conftest import data_unavailable

from bayes_scaling import datasets
from bayes_scaling.datasets import (
    CANONICAL_COLUMNS,
    ChecksumError,
    dataset_info,
    dataset_status,
    download_dataset,
    list_datasets,
    load_dataset,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO / ".." / "shared" / "datasets"
PACKAGED_NAMES = (
    "datablations",
    "porian-discrepancies",
    "zhang-critical-batch-size",
    "gadre-overtraining",
    "gemstones",
    "gemstones-hot",
)
PUBLISHED_NAMES = ("epoch-chinchilla", *PACKAGED_NAMES)
ATTRS = ("name", "source", "license", "loss_definition", "units", "citation", "sha256", "path")
PACKAGE_PREFIX = "bayes_scaling._datasets/"
MAX_PACKAGED_BYTES = 2 * 1024 * 1024


def _shared_root() -> Path:
    """The data directory the tests read: BAYES_SCALING_DATA first, else ../shared/datasets."""
    env = os.environ.get(datasets.DATA_ENV_VAR, "")
    first = next((p for p in env.split(os.pathsep) if p), None)
    return Path(first).expanduser() if first else SHARED_DATASETS


DATA_ROOT = _shared_root()


def _shared_file(name: str) -> Path:
    """Path of an unpackaged dataset's file in the data directory (skip, or fail under CI)."""
    info = dataset_info(name)
    path = DATA_ROOT / info["folder"] / info["file"]
    if not path.is_file():
        data_unavailable(
            f"{name} is not packaged and {path} is absent; set BAYES_SCALING_DATA to a folder "
            "laid out like shared/datasets to run this test"
        )
    return path


def _packaged_path(name: str) -> Path:
    """The packaged copy of a dataset's file (a real file: the package is installed unzipped)."""
    info = dataset_info(name)
    resource = resources.files("bayes_scaling._datasets").joinpath(info["folder"], info["file"])
    return Path(str(resource))


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No network, a private cache, and the data directory pointing at the shared datasets."""
    monkeypatch.setenv(datasets.OFFLINE_ENV_VAR, "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv(datasets.DATA_ENV_VAR, str(DATA_ROOT))


@pytest.fixture
def empty_dir(tmp_path) -> Path:
    path = tmp_path / "empty"
    path.mkdir()
    return path


def _tamper(src: Path, dest: Path) -> Path:
    """A copy of ``src`` at ``dest`` with the last character of its first data line changed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    lines = src.read_text().splitlines(keepends=True)
    last = lines[1].rstrip("\n")
    lines[1] = last[:-1] + ("1" if last[-1] != "1" else "2") + "\n"
    dest.write_text("".join(lines))
    return dest


# --------------------------------------------------------------------------- manifest


def test_list_datasets_names_every_dataset_and_view():
    names = list_datasets()
    assert names == sorted(names)
    assert set(names) == {*PUBLISHED_NAMES, "epoch-chinchilla-240", "demo"}


@pytest.mark.parametrize("name", [*PUBLISHED_NAMES, "demo"])
def test_manifest_entry_records_provenance(name):
    info = dataset_info(name)
    for key in ("description", "file", "license", "sha256", "rows", "loss_definition", "citation"):
        assert info[key], f"{name}: manifest key {key!r} is empty"
    assert len(info["sha256"]) == 64
    assert set(info["columns"]) | set(info.get("derived", {})) <= set(CANONICAL_COLUMNS)
    canonical = set(info["columns"]) | set(info.get("derived", {}))
    missing_units = canonical - set(info["units"])
    assert not missing_units, f"{name}: units missing for {missing_units}"
    for url in info["source_urls"]:
        assert url.startswith(("https://raw.githubusercontent.com/", "https://github.com/"))
        assert info["commit"] in url
    if "url" in info:
        assert info["url"] in info["source_urls"]


def test_only_the_unlicensed_dataset_downloads_and_the_rest_are_packaged():
    assert dataset_info("epoch-chinchilla")["url"].endswith(
        "/92258837425e1b5f2851d624287f0120583a3d0e/data/svg_extracted_data.csv"
    )
    assert dataset_info("epoch-chinchilla")["kind"] == "file"
    assert dataset_info("epoch-chinchilla")["license"].startswith("none found")
    for name in PACKAGED_NAMES:
        info = dataset_info(name)
        assert info["kind"] == "packaged" and "url" not in info, name
        assert info["license"] in ("MIT", "Apache-2.0"), name


def test_dataset_info_is_a_copy_and_describes_views():
    info = dataset_info("epoch-chinchilla")
    info["columns"]["N"] = "changed"
    assert dataset_info("epoch-chinchilla")["columns"]["N"] == "Model Size"
    view = dataset_info("epoch-chinchilla-240")
    assert view["kind"] == "view" and view["base"] == "epoch-chinchilla" and view["rows"] == 240
    assert view["drop_largest"] == {"column": "loss", "count": 5}
    assert dataset_info("demo")["kind"] == "packaged"


@pytest.mark.parametrize("call", [load_dataset, dataset_info, dataset_status])
def test_unknown_name_lists_available(call):
    available = r"available: datablations, demo, epoch-chinchilla, epoch-chinchilla-240"
    with pytest.raises(KeyError, match=rf"unknown dataset 'chinchila'; {available}"):
        call("chinchila")


# --------------------------------------------------------------------------- packaged tables


@pytest.mark.parametrize("name", PACKAGED_NAMES)
def test_packaged_file_matches_manifest_and_ships_license_and_provenance(name):
    info = dataset_info(name)
    path = _packaged_path(name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info["sha256"]
    assert path.stat().st_size < MAX_PACKAGED_BYTES
    license_text = (path.parent / info["license_file"]).read_text(encoding="utf-8")
    assert info["license"].split("-")[0] in license_text.replace("Apache License", "Apache")
    provenance = (path.parent / "PROVENANCE.md").read_text(encoding="utf-8")
    assert info["commit"] in provenance and info["file"] in provenance


def test_packaged_data_is_small():
    total = sum(_packaged_path(name).stat().st_size for name in PACKAGED_NAMES)
    assert total < MAX_PACKAGED_BYTES, f"packaged tables take {total} bytes"


def test_package_data_globs_cover_every_packaged_file():
    """A non-editable install must carry the tables: pyproject's package-data must match them."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["bayes_scaling._datasets"]
    for name in PACKAGED_NAMES:
        info = dataset_info(name)
        for file in (info["file"], info["license_file"], "PROVENANCE.md"):
            relative = f"{info['folder']}/{file}"
            assert any(fnmatch.fnmatch(relative, g) for g in globs), relative


def test_unpackaged_dataset_is_not_in_the_package():
    package = Path(str(resources.files("bayes_scaling._datasets")))
    assert not (package / "epoch-chinchilla").exists()
    digest = dataset_info("epoch-chinchilla")["sha256"]
    for path in package.rglob("*"):
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() != digest, path


# --------------------------------------------------------------------------- loading


EXPECTED = {
    "epoch-chinchilla": (245, ["N", "D", "C", "loss"], ["x", "y", "color", "hex_color"]),
    "epoch-chinchilla-240": (240, ["N", "D", "C", "loss"], ["x", "y", "color", "hex_color"]),
    "datablations": (296, ["N", "D", "U", "loss"], ["run_key", "run_name_normalized", "epochs"]),
    "porian-discrepancies": (
        1745,
        ["N", "D", "C", "loss", "group"],
        ["source_file", "row", "dataset", "hparams", "warmup", "decay", "param_count"]
        + ["loss_split"],
    ),
    "zhang-critical-batch-size": (
        45,
        ["N", "B", "steps", "group"],
        ["target_c4_val_loss", "chinchilla_steps_at_bs256", "seq_len", "tokens_per_batch"],
    ),
    "gadre-overtraining": (
        104,
        ["N", "D", "C", "loss", "group"],
        ["name", "params_no_embed", "chinchilla_multiplier", "global_bs", "lr", "loss_openlm_val"]
        + ["loss_paloma_c4_en", "loss_paloma_dolma_100_programing_languages"]
        + ["loss_paloma_falcon-refinedweb", "loss_paloma_ptb", "loss_paloma_redpajama"]
        + ["loss_de-en"],
    ),
    "gemstones": (
        199,
        ["N", "D", "C", "loss", "group"],
        ["width", "depth", "step", "num_nodes", "seconds_per_step"],
    ),
    "gemstones-hot": (
        770,
        ["N", "D", "C", "loss", "group"],
        ["width", "depth", "step", "num_nodes", "seconds_per_step"],
    ),
}


def _check_canonical(frame: pd.DataFrame, name: str) -> None:
    rows, canonical, extra = EXPECTED[name]
    assert len(frame) == rows
    assert list(frame.columns) == canonical + extra
    for column in canonical:
        if column != "group":
            assert frame[column].dtype == np.float64
            assert np.isfinite(frame[column]).all() and (frame[column] > 0).all(), column
    for key in ATTRS:
        assert key in frame.attrs, key
    assert frame.attrs["name"] == name
    assert set(frame.attrs["units"]) >= set(canonical)


@pytest.mark.parametrize("name", PACKAGED_NAMES)
def test_packaged_dataset_loads_offline_without_a_data_dir(name, monkeypatch):
    monkeypatch.delenv(datasets.DATA_ENV_VAR)
    frame = load_dataset(name)
    _check_canonical(frame, name)
    info = dataset_info(name)
    assert frame.attrs["path"] == f"{PACKAGE_PREFIX}{info['folder']}/{info['file']}"


@pytest.mark.parametrize("name", ["epoch-chinchilla", "epoch-chinchilla-240"])
def test_unpackaged_dataset_loads_from_the_data_dir(name):
    _shared_file(name)
    frame = load_dataset(name)
    _check_canonical(frame, name)
    assert Path(frame.attrs["path"]).resolve().is_relative_to(DATA_ROOT.resolve())


def test_packaged_dataset_ignores_the_env_data_dir(tmp_path, monkeypatch):
    """The environment variable is for files that are not packaged: a bad copy there is unused."""
    src = _packaged_path("zhang-critical-batch-size")
    _tamper(src, tmp_path / "env" / "zhang-critical-batch-size" / src.name)
    monkeypatch.setenv(datasets.DATA_ENV_VAR, str(tmp_path / "env"))
    frame = load_dataset("zhang-critical-batch-size")
    assert frame.attrs["path"].startswith(PACKAGE_PREFIX)


def test_packaged_dataset_falls_back_to_the_package_when_data_dir_lacks_it(empty_dir):
    frame = load_dataset("gemstones", data_dir=empty_dir, download=False)
    assert len(frame) == 199 and frame.attrs["path"].startswith(PACKAGE_PREFIX)


@pytest.mark.parametrize("name", ["datablations", "gemstones"])
def test_matching_copy_in_explicit_data_dir_is_used(name, tmp_path):
    info = dataset_info(name)
    copy = tmp_path / "data" / info["folder"] / info["file"]
    copy.parent.mkdir(parents=True)
    shutil.copy(_packaged_path(name), copy)
    frame = load_dataset(name, data_dir=tmp_path / "data")
    assert frame.attrs["path"] == str(copy)
    pd.testing.assert_frame_equal(frame, load_dataset(name))


def test_epoch_chinchilla_tokens_are_derived_from_compute():
    raw = pd.read_csv(_shared_file("epoch-chinchilla"))
    frame = load_dataset("epoch-chinchilla")
    np.testing.assert_array_equal(frame["N"], raw["Model Size"])
    np.testing.assert_array_equal(frame["D"], raw["Training FLOP"] / (6 * raw["Model Size"]))
    assert frame.attrs["license"].startswith("none found")


def test_epoch_chinchilla_240_drops_the_five_highest_losses():
    _shared_file("epoch-chinchilla")
    full = load_dataset("epoch-chinchilla")
    view = load_dataset("epoch-chinchilla-240")
    dropped = full["loss"].nlargest(5)
    assert view["loss"].max() < dropped.min()
    kept = full.drop(index=dropped.index).reset_index(drop=True)
    pd.testing.assert_frame_equal(view, kept, check_like=False)
    assert "5 rows with the highest loss were dropped" in view.attrs["view"]
    assert view.attrs["base"] == "epoch-chinchilla"


def test_porian_groups_are_the_fifteen_settings():
    frame = load_dataset("porian-discrepancies")
    assert frame["group"].nunique() == 15
    assert "rw/tuned/short/const/standard/val" in set(frame["group"])
    assert set(frame["loss_split"]) == {"train", "val"}
    assert "loss_split" in frame.attrs["loss_definition"]


def test_zhang_batch_size_is_in_sequences():
    frame = load_dataset("zhang-critical-batch-size")
    np.testing.assert_array_equal(frame["B"] * frame["seq_len"], frame["tokens_per_batch"])
    assert sorted(frame["N"].unique()) == [85e6, 151e6, 302e6, 604e6, 1.2e9]
    assert frame["group"].nunique() == 5
    assert "sequences" in frame.attrs["units"]["B"]


def test_gadre_compute_is_six_n_d_and_groups_are_the_corpora():
    frame = load_dataset("gadre-overtraining")
    np.testing.assert_allclose(frame["C"], 6 * frame["N"] * frame["D"], rtol=1e-15)
    assert sorted(frame["group"].unique()) == ["c4_original", "rpj", "rw_original"]
    np.testing.assert_allclose(frame["chinchilla_multiplier"], frame["D"] / (20 * frame["N"]), rtol=0.02)
    assert frame["N"].min() > 1e7 and frame["N"].max() < 7e9
    assert (frame["N"] > 1e9).sum() == 9  # the 1.4B and 6.9B runs the paper predicts, 3 a corpus


def test_gemstones_are_cooldown_end_points_and_hot_checkpoints():
    cool = load_dataset("gemstones")
    hot = load_dataset("gemstones-hot")
    assert cool["group"].nunique() == 20 and hot["group"].nunique() == 22
    assert set(cool["group"]) <= set(hot["group"])
    np.testing.assert_allclose(cool["C"], 6 * cool["N"] * cool["D"], rtol=1e-15)
    # each cooldown is branched at 10e9, 20e9, ... tokens and adds 10% more
    branch = cool["D"] / 1.1 / 1e10
    np.testing.assert_allclose(branch, branch.round(), atol=0.01)
    assert "cooldown" in cool.attrs["loss_definition"]
    assert "NOT end-of-schedule" in hot.attrs["loss_definition"]
    lines = _packaged_path("gemstones").read_text(encoding="utf-8").splitlines()
    np.testing.assert_array_equal(cool["loss"], [json.loads(line)["final_loss"] for line in lines])


def test_flat_layout_and_explicit_dir_beats_env(tmp_path, monkeypatch, empty_dir):
    src = _packaged_path("zhang-critical-batch-size")
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(src, flat / src.name)
    monkeypatch.setenv(datasets.DATA_ENV_VAR, str(empty_dir))
    frame = load_dataset("zhang-critical-batch-size", data_dir=flat)
    assert len(frame) == 45 and frame.attrs["path"] == str(flat / src.name)


def test_checksum_mismatch_raises_and_verify_false_loads(tmp_path):
    src = _packaged_path("zhang-critical-batch-size")
    bad = _tamper(src, tmp_path / "data" / "zhang-critical-batch-size" / src.name)
    pattern = r"checksum mismatch for .*chinchilla_steps_to_target_loss\.csv.*verify=False"
    with pytest.raises(ChecksumError, match=pattern):
        load_dataset("zhang-critical-batch-size", data_dir=tmp_path / "data")
    frame = load_dataset("zhang-critical-batch-size", data_dir=tmp_path / "data", verify=False)
    assert len(frame) == 45 and frame.attrs["path"] == str(bad)


def test_damaged_packaged_file_is_caught(monkeypatch):
    entry = datasets._manifest()["datasets"]["gadre-overtraining"]
    monkeypatch.setitem(entry, "sha256", "0" * 64)
    with pytest.raises(ChecksumError, match="gadre-overtraining.*checksum mismatch"):
        load_dataset("gadre-overtraining")


def test_missing_unpackaged_file_offline_names_the_env_var(empty_dir, tmp_path):
    info = dataset_info("epoch-chinchilla")
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("epoch-chinchilla", data_dir=empty_dir, download=False)
    message = str(err.value)
    assert "BAYES_SCALING_DATA" in message and "epoch-chinchilla" in message
    assert str(empty_dir / info["folder"] / info["file"]) in message
    assert str(tmp_path / "xdg-cache" / "bayes-scaling") in message


def test_missing_file_with_offline_env_var_does_not_download(empty_dir):
    with pytest.raises(FileNotFoundError, match="BAYES_SCALING_OFFLINE is set") as err:
        load_dataset("epoch-chinchilla-240", data_dir=empty_dir)
    assert "bayes-scaling datasets get epoch-chinchilla" in str(err.value)


def test_file_without_url_or_package_cannot_be_downloaded(empty_dir, monkeypatch):
    entry = datasets._manifest()["datasets"]["porian-discrepancies"]
    monkeypatch.setitem(entry, "packaged", False)
    with pytest.raises(FileNotFoundError, match="publishes no copy of this exact file"):
        load_dataset("porian-discrepancies", data_dir=empty_dir, download=True)


# --------------------------------------------------------------------------- download


@pytest.fixture
def epoch_mirror(tmp_path, monkeypatch) -> tuple[dict, Path]:
    """A file:// mirror of epoch-chinchilla: the real file when present, else a synthetic one.

    The manifest entry (cached in memory) gets the mirror's URL, and for the stand-in its checksum;
    monkeypatch restores both.
    """
    entry = datasets._manifest()["datasets"]["epoch-chinchilla"]
    mirror = tmp_path / "mirror" / entry["file"]
    mirror.parent.mkdir()
    real = DATA_ROOT / entry["folder"] / entry["file"]
    if real.is_file():
        shutil.copy(real, mirror)
    else:
        n = np.geomspace(7e7, 1.6e10, entry["rows"])
        loss = 1.8 + 400 * n**-0.34 + np.linspace(0.0, 0.5, entry["rows"])
        stand_in = pd.DataFrame({"Model Size": n, "Training FLOP": 120 * n**2, "loss": loss})
        stand_in.to_csv(mirror, index=False)
        monkeypatch.setitem(entry, "sha256", hashlib.sha256(mirror.read_bytes()).hexdigest())
    monkeypatch.setitem(entry, "url", mirror.as_uri())
    return entry, mirror


def test_download_from_file_url_into_cache(tmp_path, empty_dir, epoch_mirror):
    entry, mirror = epoch_mirror
    frame = load_dataset("epoch-chinchilla", data_dir=empty_dir, download=True)
    cached = tmp_path / "xdg-cache" / "bayes-scaling" / "epoch-chinchilla" / mirror.name
    assert len(frame) == 245 and frame.attrs["path"] == str(cached)
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == entry["sha256"]
    # found in the cache afterwards, with downloads off
    again = load_dataset("epoch-chinchilla-240", data_dir=empty_dir, download=False)
    assert len(again) == 240 and again.attrs["path"] == str(cached)


def test_download_checksum_failure_deletes_the_file(tmp_path, empty_dir, epoch_mirror):
    entry, mirror = epoch_mirror
    entry["url"] = _tamper(mirror, tmp_path / "bad-mirror" / mirror.name).as_uri()
    with pytest.raises(ChecksumError, match="it was deleted"):
        load_dataset("epoch-chinchilla", data_dir=empty_dir, download=True)
    cache = tmp_path / "xdg-cache" / "bayes-scaling" / "epoch-chinchilla"
    assert list(cache.iterdir()) == []


def test_download_failure_names_the_url_and_the_offline_remedy(tmp_path, empty_dir, epoch_mirror):
    entry, _ = epoch_mirror
    entry["url"] = (tmp_path / "nowhere" / "svg_extracted_data.csv").as_uri()
    with pytest.raises(OSError, match=r"download from file://.*nowhere.* failed") as err:
        load_dataset("epoch-chinchilla", data_dir=empty_dir, download=True)
    assert "bayes-scaling datasets get epoch-chinchilla" in str(err.value)


def test_download_dataset_fetches_once_and_force_fetches_again(tmp_path, monkeypatch, epoch_mirror):
    entry, _ = epoch_mirror
    monkeypatch.delenv(datasets.OFFLINE_ENV_VAR)
    path = download_dataset("epoch-chinchilla-240")
    assert path == tmp_path / "xdg-cache" / "bayes-scaling" / "epoch-chinchilla" / entry["file"]
    first = path.stat().st_mtime_ns
    assert download_dataset("epoch-chinchilla") == path and path.stat().st_mtime_ns == first
    os.utime(path, ns=(first - 10**9, first - 10**9))
    assert download_dataset("epoch-chinchilla", force=True) == path
    assert path.stat().st_mtime_ns != first - 10**9


def test_download_dataset_refuses_offline_and_packaged(epoch_mirror):
    with pytest.raises(OSError, match="BAYES_SCALING_OFFLINE is set"):
        download_dataset("epoch-chinchilla")
    with pytest.raises(ValueError, match="'gemstones' has no download URL: it ships with the package"):
        download_dataset("gemstones")


def test_dataset_status_reports_package_cache_and_download(tmp_path, monkeypatch, epoch_mirror):
    entry, mirror = epoch_mirror
    monkeypatch.setenv(datasets.DATA_ENV_VAR, str(tmp_path / "none"))
    status = dataset_status("gadre-overtraining")
    assert status["packaged"] and not status["downloadable"] and status["rows"] == 104
    assert status["license"] == "MIT"
    status = dataset_status("epoch-chinchilla-240")
    assert not status["packaged"] and status["downloadable"] and status["rows"] == 240
    assert status["cached"] is None and not status["cached_ok"]
    cached = tmp_path / "xdg-cache" / "bayes-scaling" / "epoch-chinchilla" / entry["file"]
    cached.parent.mkdir(parents=True)
    shutil.copy(mirror, cached)
    status = dataset_status("epoch-chinchilla")
    assert status["cached"] == str(cached) and status["cached_ok"]


def test_missing_data_fails_under_ci_and_skips_otherwise(monkeypatch):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        data_unavailable("no data")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no data"):
        data_unavailable("no data")


# --------------------------------------------------------------------------- demo


def _load_make_demo():
    spec = importlib.util.spec_from_file_location("make_demo", REPO / "datasets" / "make_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_loads_from_the_package_without_a_data_dir(monkeypatch):
    monkeypatch.delenv(datasets.DATA_ENV_VAR)
    frame = load_dataset("demo")
    assert list(frame.columns) == ["N", "D", "C", "loss"]
    assert 40 <= len(frame) <= 60
    np.testing.assert_allclose(frame["C"], 6 * frame["N"] * frame["D"], rtol=1e-12)
    ratio = frame["D"] / frame["N"]
    assert ratio.min() >= 4.9 and ratio.max() <= 81
    assert frame["N"].nunique() == 8 and frame["N"].min() == 5e7 and frame["N"].max() == 3e9
    assert frame.attrs["name"] == "demo" and frame.attrs["path"].endswith("demo.csv")


def test_demo_regenerates_exactly(tmp_path):
    make_demo = _load_make_demo()
    written = make_demo.write_demo(tmp_path / "demo.csv")
    shipped = resources.files("bayes_scaling._datasets").joinpath("demo.csv").read_bytes()
    assert written.read_bytes() == shipped


def test_demo_is_close_to_its_generating_law():
    make_demo = _load_make_demo()
    frame = load_dataset("demo")
    p = make_demo.TRUE_PARAMS
    law = p["E"] + p["A"] * frame["N"] ** -p["alpha"] + p["B"] * frame["D"] ** -p["beta"]
    residual = np.log(frame["loss"]) - np.log(law)
    assert abs(residual.median()) < 0.01 and residual.abs().max() < 0.1


def test_demo_is_not_a_copy_of_a_shared_file():
    shipped = resources.files("bayes_scaling._datasets").joinpath("demo.csv").read_bytes()
    digest = hashlib.sha256(shipped).hexdigest()
    assert digest == dataset_info("demo")["sha256"]
    assert digest not in {dataset_info(name)["sha256"] for name in PUBLISHED_NAMES}
    if DATA_ROOT.is_dir():
        for path in DATA_ROOT.rglob("*.csv"):
            assert hashlib.sha256(path.read_bytes()).hexdigest() != digest, path
