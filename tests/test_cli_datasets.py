"""Tests of the ``datasets`` command (bayes_scaling.cli_datasets), run in-process without network."""

from __future__ import annotations

import hashlib
import json

import pytest

from bayes_scaling import cli, datasets


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No network, a private cache, no data directory."""
    monkeypatch.setenv(datasets.OFFLINE_ENV_VAR, "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv(datasets.DATA_ENV_VAR, raising=False)


@pytest.fixture
def epoch_mirror(tmp_path, monkeypatch):
    """A synthetic stand-in for epoch-chinchilla behind a file:// URL (manifest entry patched)."""
    entry = datasets._manifest()["datasets"]["epoch-chinchilla"]
    mirror = tmp_path / "mirror" / entry["file"]
    mirror.parent.mkdir()
    mirror.write_text("Model Size,Training FLOP,loss\n" + "1e8,1e18,3.0\n" * entry["rows"])
    monkeypatch.setitem(entry, "url", mirror.as_uri())
    monkeypatch.setitem(entry, "sha256", hashlib.sha256(mirror.read_bytes()).hexdigest())
    return entry


def test_list_shows_every_dataset_and_where_it_comes_from(capsys):
    assert cli.main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:-1]}
    assert set(lines) == set(datasets.list_datasets())
    assert lines["gemstones"] == ["gemstones", "199", "MIT", "yes", "-", "no"]
    assert lines["datablations"][1:4] == ["296", "Apache-2.0", "yes"]
    assert lines["epoch-chinchilla"] == ["epoch-chinchilla", "245", "none", "found", "no", "no", "yes"]
    assert out.splitlines()[0].split() == ["name", "rows", "license", "packaged", "cached", "download"]


def test_list_json_reports_status(capsys):
    assert cli.main(["datasets", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_name = {row["name"]: row for row in rows}
    assert by_name["gadre-overtraining"]["packaged"] is True
    assert by_name["epoch-chinchilla-240"]["downloadable"] is True
    assert by_name["epoch-chinchilla-240"]["cached"] is None


def test_get_packaged_says_so(capsys):
    assert cli.main(["datasets", "get", "porian-discrepancies"]) == 0
    assert "ships with the package" in capsys.readouterr().out


def test_get_offline_is_a_clear_error(capsys):
    assert cli.main(["datasets", "get", "epoch-chinchilla"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "BAYES_SCALING_OFFLINE is set" in err and "Traceback" not in err


def test_get_unknown_name_lists_available(capsys):
    assert cli.main(["datasets", "get", "chinchila"]) == cli.EXIT_BAD_INPUT
    assert "unknown dataset 'chinchila'; available:" in capsys.readouterr().err


def test_get_downloads_then_finds_the_cache(capsys, monkeypatch, tmp_path, epoch_mirror):
    monkeypatch.delenv(datasets.OFFLINE_ENV_VAR)
    cached = tmp_path / "xdg-cache" / "bayes-scaling" / "epoch-chinchilla" / epoch_mirror["file"]
    assert cli.main(["datasets", "get", "epoch-chinchilla"]) == 0
    assert f"downloaded, sha256 checked: {cached}" in capsys.readouterr().out
    assert cli.main(["datasets", "get", "epoch-chinchilla-240"]) == 0
    assert "already in the cache" in capsys.readouterr().out
    assert cli.main(["datasets", "get", "epoch-chinchilla", "--force"]) == 0
    assert "downloaded" in capsys.readouterr().out
    assert cli.main(["datasets", "list"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("epoch-chinchilla "))
    assert line.split()[-2:] == ["yes", "yes"]
