"""Tests of bayes_scaling.datasets: manifest, loading by name, checksums, downloads, demo data.

The published files are read from ``BAYES_SCALING_DATA`` when set, else from ``../shared/datasets``
beside the checkout; tests that need them skip when they are absent. No test touches the network:
downloads use ``file://`` URLs, and ``BAYES_SCALING_OFFLINE`` is set for every test.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_scaling import datasets
from bayes_scaling.datasets import (
    CANONICAL_COLUMNS,
    ChecksumError,
    dataset_info,
    list_datasets,
    load_dataset,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO / ".." / "shared" / "datasets"
SHARED_NAMES = (
    "epoch-chinchilla",
    "datablations",
    "porian-discrepancies",
    "zhang-critical-batch-size",
)
ATTRS = ("name", "source", "license", "loss_definition", "units", "citation", "sha256", "path")


def _shared_root() -> Path:
    """The data directory the tests read: BAYES_SCALING_DATA first, else ../shared/datasets."""
    env = os.environ.get(datasets.DATA_ENV_VAR, "")
    first = next((p for p in env.split(os.pathsep) if p), None)
    return Path(first).expanduser() if first else SHARED_DATASETS


DATA_ROOT = _shared_root()


def _shared_file(name: str) -> Path:
    """Path of a shared dataset's file, skipping the test when it is not there."""
    info = dataset_info(name)
    path = DATA_ROOT / info["folder"] / info["file"]
    if not path.is_file():
        pytest.skip(
            f"shared dataset file {path} is absent; set BAYES_SCALING_DATA to a folder laid out "
            "like shared/datasets to run this test"
        )
    return path


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
    """A copy of ``src`` at ``dest`` with one loss digit changed."""
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
    assert set(names) == {*SHARED_NAMES, "epoch-chinchilla-240", "demo"}


@pytest.mark.parametrize("name", [*SHARED_NAMES, "demo"])
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
        assert url.startswith("https://raw.githubusercontent.com/") and info["commit"] in url
    if "url" in info:
        assert info["url"] in info["source_urls"]


def test_only_exact_copies_have_a_download_url():
    assert dataset_info("epoch-chinchilla")["url"].endswith(
        "/92258837425e1b5f2851d624287f0120583a3d0e/data/svg_extracted_data.csv"
    )
    for name in ("datablations", "porian-discrepancies", "zhang-critical-batch-size"):
        assert "url" not in dataset_info(name), f"{name} is derived: no file to download"


def test_dataset_info_is_a_copy_and_describes_views():
    info = dataset_info("epoch-chinchilla")
    info["columns"]["N"] = "changed"
    assert dataset_info("epoch-chinchilla")["columns"]["N"] == "Model Size"
    view = dataset_info("epoch-chinchilla-240")
    assert view["kind"] == "view" and view["base"] == "epoch-chinchilla" and view["rows"] == 240
    assert view["drop_largest"] == {"column": "loss", "count": 5}
    assert dataset_info("demo")["kind"] == "packaged"


@pytest.mark.parametrize("call", [load_dataset, dataset_info])
def test_unknown_name_lists_available(call):
    available = r"available: datablations, demo, epoch-chinchilla, epoch-chinchilla-240"
    with pytest.raises(KeyError, match=rf"unknown dataset 'chinchila'; {available}"):
        call("chinchila")


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
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_shared_dataset_loads_with_canonical_columns(name):
    _shared_file(name)
    rows, canonical, extra = EXPECTED[name]
    frame = load_dataset(name)
    assert len(frame) == rows
    assert list(frame.columns) == canonical + extra
    for column in canonical:
        if column != "group":
            assert frame[column].dtype == np.float64
            assert np.isfinite(frame[column]).all() and (frame[column] > 0).all(), column
    for key in ATTRS:
        assert key in frame.attrs, key
    assert frame.attrs["name"] == name
    assert Path(frame.attrs["path"]).resolve().is_relative_to(DATA_ROOT.resolve())
    assert set(frame.attrs["units"]) >= set(canonical)


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
    _shared_file("porian-discrepancies")
    frame = load_dataset("porian-discrepancies")
    assert frame["group"].nunique() == 15
    assert "rw/tuned/short/const/standard/val" in set(frame["group"])
    assert set(frame["loss_split"]) == {"train", "val"}
    assert "loss_split" in frame.attrs["loss_definition"]


def test_zhang_batch_size_is_in_sequences():
    _shared_file("zhang-critical-batch-size")
    frame = load_dataset("zhang-critical-batch-size")
    np.testing.assert_array_equal(frame["B"] * frame["seq_len"], frame["tokens_per_batch"])
    assert sorted(frame["N"].unique()) == [85e6, 151e6, 302e6, 604e6, 1.2e9]
    assert frame["group"].nunique() == 5
    assert "sequences" in frame.attrs["units"]["B"]


def test_flat_layout_and_explicit_dir_beats_env(tmp_path, monkeypatch, empty_dir):
    src = _shared_file("zhang-critical-batch-size")
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(src, flat / src.name)
    monkeypatch.setenv(datasets.DATA_ENV_VAR, str(empty_dir))
    frame = load_dataset("zhang-critical-batch-size", data_dir=flat)
    assert len(frame) == 45 and frame.attrs["path"] == str(flat / src.name)


def test_checksum_mismatch_raises_and_verify_false_loads(tmp_path):
    src = _shared_file("epoch-chinchilla")
    bad = _tamper(src, tmp_path / "data" / "epoch-chinchilla" / src.name)
    with pytest.raises(ChecksumError, match=r"checksum mismatch for .*svg_extracted_data\.csv"):
        load_dataset("epoch-chinchilla", data_dir=tmp_path / "data")
    with pytest.raises(ValueError, match="verify=False"):
        load_dataset("epoch-chinchilla-240", data_dir=tmp_path / "data")
    frame = load_dataset("epoch-chinchilla", data_dir=tmp_path / "data", verify=False)
    assert len(frame) == 245 and frame.attrs["path"] == str(bad)


@pytest.mark.parametrize("name", SHARED_NAMES)
def test_missing_file_offline_names_the_env_var(name, empty_dir, tmp_path):
    info = dataset_info(name)
    with pytest.raises(FileNotFoundError) as err:
        load_dataset(name, data_dir=empty_dir, download=False)
    message = str(err.value)
    assert "BAYES_SCALING_DATA" in message and name in message
    assert str(empty_dir / info["folder"] / info["file"]) in message
    assert str(tmp_path / "xdg-cache" / "bayes-scaling") in message


def test_missing_file_with_offline_env_var_does_not_download(empty_dir):
    with pytest.raises(FileNotFoundError, match="BAYES_SCALING_OFFLINE is set"):
        load_dataset("epoch-chinchilla", data_dir=empty_dir)


def test_derived_dataset_cannot_be_downloaded(empty_dir):
    with pytest.raises(FileNotFoundError, match="publishes no copy of this exact file"):
        load_dataset("porian-discrepancies", data_dir=empty_dir, download=True)


# --------------------------------------------------------------------------- download


@pytest.fixture
def epoch_entry(monkeypatch):
    """The cached manifest entry of epoch-chinchilla, restored after the test."""
    entry = datasets._manifest()["datasets"]["epoch-chinchilla"]
    monkeypatch.setitem(entry, "url", entry["url"])
    return entry


def test_download_from_file_url_into_cache(tmp_path, empty_dir, epoch_entry):
    src = _shared_file("epoch-chinchilla")
    mirror = tmp_path / "mirror" / src.name
    mirror.parent.mkdir()
    shutil.copy(src, mirror)
    epoch_entry["url"] = mirror.as_uri()
    frame = load_dataset("epoch-chinchilla", data_dir=empty_dir, download=True)
    cached = tmp_path / "xdg-cache" / "bayes-scaling" / "epoch-chinchilla" / src.name
    assert len(frame) == 245 and frame.attrs["path"] == str(cached)
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == epoch_entry["sha256"]
    # found in the cache afterwards, with downloads off
    again = load_dataset("epoch-chinchilla-240", data_dir=empty_dir, download=False)
    assert len(again) == 240 and again.attrs["path"] == str(cached)


def test_download_checksum_failure_deletes_the_file(tmp_path, empty_dir, epoch_entry):
    src = _shared_file("epoch-chinchilla")
    epoch_entry["url"] = _tamper(src, tmp_path / "mirror" / src.name).as_uri()
    with pytest.raises(ChecksumError, match="it was deleted"):
        load_dataset("epoch-chinchilla", data_dir=empty_dir, download=True)
    cache = tmp_path / "xdg-cache" / "bayes-scaling" / "epoch-chinchilla"
    assert list(cache.iterdir()) == []


def test_download_failure_names_the_url(tmp_path, empty_dir, epoch_entry):
    epoch_entry["url"] = (tmp_path / "nowhere" / "svg_extracted_data.csv").as_uri()
    with pytest.raises(OSError, match=r"download from file://.*nowhere.* failed"):
        load_dataset("epoch-chinchilla", data_dir=empty_dir, download=True)


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
    assert digest not in {dataset_info(name)["sha256"] for name in SHARED_NAMES}
    if DATA_ROOT.is_dir():
        for path in DATA_ROOT.rglob("*.csv"):
            assert hashlib.sha256(path.read_bytes()).hexdigest() != digest, path
