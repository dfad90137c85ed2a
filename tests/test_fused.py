"""``sigforge run`` fuses build + split and analyze's last pass + normalize into one pipeline each
(``beam_pipelines/stages/fused.py``): the same bytes as the stages run one by one, the same manifest entries,
and each stage still checked and published on its own, in order."""

from __future__ import annotations

import hashlib

import pytest

from beam_pipelines import manifest
from beam_pipelines.pipeline import run_all
from beam_pipelines.stages import fused, normalize
from beam_pipelines.stages.analyze import run_analyze
from beam_pipelines.stages.build import run_build
from beam_pipelines.stages.normalize import run_normalize
from beam_pipelines.stages.split import run_split
from transforms.config import DatasetConfig, load_config

_G2NET = [
    "build.examples_per_shard=16",
    "split.examples_per_shard=12",
    "split.fractions={train: 0.6, val: 0.2, test: 0.2}",
]
# Differ by nature between two runs, or only say that the stage was fused.
_VOLATILE = ("seconds", "completed_at", "fused")


def _digests(out):
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def _stage_entries(out):
    stages = manifest.read_manifest(str(out))["stages"]
    return {name: {k: v for k, v in entry.items() if k not in _VOLATILE} for name, entry in stages.items()}


def _one_by_one(config, raw, out):
    run_build(config, str(raw), str(out))
    run_split(config, str(out))
    run_analyze(config, str(out))
    run_normalize(config, str(out))


def _assert_same_dataset(fused_out, staged_out):
    a, b = _digests(fused_out), _digests(staged_out)
    assert sorted(a) == sorted(b)
    assert [name for name in a if a[name] != b[name]] == []
    assert _stage_entries(fused_out) == _stage_entries(staged_out)
    stages = manifest.read_manifest(str(fused_out))["stages"]
    assert stages["build"]["fused"] == ["build", "split"] and stages["split"]["fused"] == ["build", "split"]
    assert stages["normalize"]["fused"] == ["analyze", "normalize"]
    assert "fused" not in manifest.read_manifest(str(staged_out))["stages"]["build"]


def test_fused_run_writes_the_bytes_of_the_stages_run_one_by_one(g2net_raw_k3, tmp_path):
    """G2Net (two analysis passes: the PSD pass alone, the moments pass fused with normalize): every shard, data
    table, rejection table, transform_fn file and statistics file byte-identical; the same manifest entries."""
    config = load_config(DatasetConfig, "run_configs/demo.yaml", _G2NET)
    run_all(config, str(g2net_raw_k3), str(tmp_path / "fused"))
    _one_by_one(config, g2net_raw_k3, tmp_path / "staged")
    digests = _digests(tmp_path / "fused")
    assert any(n.startswith("norm/test/norm_test_shard_") for n in digests) and "stats/train_stats.npz" in digests
    _assert_same_dataset(tmp_path / "fused", tmp_path / "staged")


def test_fused_light_curves_match_too(tmp_path):
    """Light curves (one analysis pass, fused with normalize; data tables with float columns)."""
    from transforms.recipes import get_recipe

    raw = tmp_path / "raw"
    get_recipe("tce").make_sample(str(raw), n=6, seed=3)
    config = load_config(DatasetConfig, "run_configs/tce_kepler.yaml", ["tce.mode=views"])
    run_all(config, str(raw), str(tmp_path / "fused"))
    _one_by_one(config, raw, tmp_path / "staged")
    _assert_same_dataset(tmp_path / "fused", tmp_path / "staged")


def test_a_failed_check_publishes_the_earlier_fused_stage_only(g2net_raw_k3, tmp_path, monkeypatch):
    """normalize's check fails after the fused analyze + normalize pipeline: stats/ is published (analyze
    passed its own check), norm/ is not, and the manifest has no normalize entry: what separate stages give."""
    config = load_config(DatasetConfig, "run_configs/demo.yaml", _G2NET)
    out = tmp_path / "ds"
    fused.run_build_split(config, str(g2net_raw_k3), str(out))

    def refuse(summary):
        raise manifest.StageError("normalize: refused by the test")

    monkeypatch.setattr(normalize, "check_normalized", refuse)
    with pytest.raises(manifest.StageError, match="refused by the test"):
        fused.run_analyze_normalize(config, str(out))
    stages = manifest.read_manifest(str(out))["stages"]
    assert sorted(stages) == ["analyze", "build", "split"]
    assert (out / "stats" / "train_stats.npz").exists()
    assert not (out / "norm").exists()


def test_a_failed_earlier_check_publishes_neither(g2net_raw_k3, tmp_path, monkeypatch):
    config = load_config(DatasetConfig, "run_configs/demo.yaml", _G2NET)
    out = tmp_path / "ds"
    fused.run_build_split(config, str(g2net_raw_k3), str(out))

    def refuse(summary):
        raise manifest.StageError("analyze: refused by the test")

    monkeypatch.setattr(fused.analyze, "check_stats", refuse)
    with pytest.raises(manifest.StageError, match="refused by the test"):
        fused.run_analyze_normalize(config, str(out))
    assert sorted(manifest.read_manifest(str(out))["stages"]) == ["build", "split"]
    assert not (out / "stats").exists() and not (out / "norm").exists()
