"""Shared fixtures: small generated raw data sets, built once per session (TF/Beam start-up is the cost)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def g2net_raw(tmp_path_factory):
    """A clean 48-sample G2Net-layout raw folder, 2 signals per source (so groups matter)."""
    from transforms.recipes.g2net import sample as gw_sample

    out = tmp_path_factory.mktemp("g2net_raw")
    gw_sample.write_g2net_sample(str(out), n=48, seed=11, signals_per_source=2)
    return out


@pytest.fixture(scope="session")
def g2net_raw_k3(tmp_path_factory):
    """48 samples with every waveform injected 3 times under one source_id: a split by sample id would leak."""
    from transforms.recipes.g2net import sample as gw_sample

    out = tmp_path_factory.mktemp("g2net_raw_k3")
    gw_sample.write_g2net_sample(str(out), n=48, seed=5, signals_per_source=3)
    return out
