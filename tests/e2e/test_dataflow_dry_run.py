"""Dry runs: every stage of both recipes built for the DataflowRunner, offline, and what the graphs hold.

``sigforge run --dry-run`` with Dataflow options builds each pipeline and hands it to Beam's ``dry_run``, which
builds the Dataflow job on this machine (``setup.py sdist`` and the Docker environment included) and submits
nothing. Offline on purpose: the dataset folder is a ``gs://`` path that nothing may read or write (there are no
credentials and no network), so a stage that touched it would fail the run. The raw input is local, since the
build's driver-side plan reads the inputs' CSV headers (a real dry run reads them from gs://).

The Beam options are real-looking on purpose: Beam validates names before it builds anything, and an invalid
project id or bucket name (``p``, ``gs://b/``) makes it look for a default bucket on GCS, i.e. go online.
``disable_logging_submission_environment`` (a Beam experiment) skips the ``pip freeze`` Beam stages beside the
sdist, one subprocess per pipeline that this test does not look at.
"""

from __future__ import annotations

import base64
import bz2
import json
import os
import re
import tarfile
import tempfile
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = "example.io/sigforge:test"
DATAFLOW = [
    "--runner=DataflowRunner",
    "--project=sigforge-dry-run",
    "--region=us-central1",
    "--temp_location=gs://sigforge-dry-run/tmp",
    "--staging_location=gs://sigforge-dry-run/staging",
    "--setup_file=./setup.py",
    f"--sdk_container_image={IMAGE}",
    "--experiments=disable_logging_submission_environment",
]
# The composite transforms each stage applies (unique names, "/" between levels), beside Beam's and tf.Transform's.
EXPECTED = {
    "build": ["Build[{recipe}]", "Build[{recipe}]/WriteShards[raw]", "Build[{recipe}]/WriteRejected"],
    "split": ["ReadRaw", "ReadRaw/SpreadFiles", "SplitByTarget", "SplitByTarget/WriteShards", "WriteSummary"],
    "analyze": ["ReadTrain", "AnalyzeTrain", "AnalyzeTrain/AnalyzeDataset", "AnalyzeTrain/WriteTransformFn"],
    "normalize": [
        "ReadTransformFn",
        "NormalizeSplits/ReadSplits",
        "NormalizeSplits/TransformSplits/TransformDataset",
        "NormalizeSplits/WriteShards",
        "WriteSummary",
    ],
    "filter": ["FilterNorm/ReadNorm", "FilterNorm/ApplyConditions/JoinDataTable", "FilterNorm/WriteShards"],
}
RECIPE_EXPECTED = {
    "g2net": {
        "build": ["Build[g2net]/MatchNpy", "Build[g2net]/JoinById", "Build[g2net]/Preprocess"],
        "analyze": ["ScaleOutliers"],  # the outlier guard rides along the first pass only
    },
    "tce": {
        "build": ["Build[tce]/MatchFits", "Build[tce]/JoinByTarget", "Build[tce]/ProcessTarget"],
        "analyze": ["AnalyzeTrain/CapPerGroup"],  # max_examples_per_group: 4
    },
}
RUNS = {
    # g2net: the demo recipe plus the example filter (labels, a data-table column, a target-id list)
    "g2net": ("run_configs/filter_example.yaml", []),
    "tce": ("run_configs/tce_kepler.yaml", ["--set", 'filter={"conditions": [{"name": "binary", "labels": [0, 1]}]}']),
}


@pytest.fixture(scope="module")
def tce_raw(tmp_path_factory):
    from transforms.recipes.tce import sample as tce_sample

    raw = tmp_path_factory.mktemp("tce_raw")
    tce_sample.write_tce_sample(str(raw), n_targets=2, seed=3, quarters=1, days_per_quarter=20.0)
    return raw


@pytest.fixture(scope="module", params=sorted(RUNS))
def planned(request, tmp_path_factory):
    """(recipe, raw input, plans folder, what is left in the temporary folder) of ``sigforge run --dry-run`` with
    the Dataflow profile (its placeholders given, plus the image) into a gs:// dataset."""
    from beam_pipelines.commands import cli

    recipe = request.param
    raw = request.getfixturevalue("g2net_raw" if recipe == "g2net" else "tce_raw")
    plans = tmp_path_factory.mktemp(f"plans_{recipe}")
    config, sets = RUNS[recipe]
    argv = ["run", "--config", config, "--input", str(raw), "--output", f"gs://sigforge-dry-run/{recipe}"]
    argv += [*sets, "--profile", "run_configs/dataflow.yaml", "--dry-run", "--plans-dir", str(plans), "--", *DATAFLOW]
    temp = tmp_path_factory.mktemp(f"temp_{recipe}")  # where Beam makes its temporary folders
    cwd, tempdir = os.getcwd(), tempfile.tempdir
    os.chdir(REPO)  # --setup_file=./setup.py, as a user runs it from the repository root
    tempfile.tempdir = str(temp)
    try:
        assert cli.main(argv) == 0
    finally:
        os.chdir(cwd)
        tempfile.tempdir = tempdir
    return recipe, Path(raw), plans, sorted(os.listdir(temp))


def _index(plans: Path) -> dict:
    return json.loads((plans / "index.json").read_text())


def _pipeline(plans: Path, name: str):
    from apache_beam.portability.api import beam_runner_api_pb2
    from google.protobuf import json_format

    return json_format.Parse((plans / f"{name}.json").read_text(), beam_runner_api_pb2.Pipeline())


def _plans_by_stage(plans: Path) -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    for entry in _index(plans)["plans"]:
        stages.setdefault(entry["stage"], []).append(entry["name"])
    return stages


def test_every_stage_is_built_with_its_transforms(planned):
    recipe, _, plans, _ = planned
    stages = _plans_by_stage(plans)
    assert list(stages) == ["build", "split", "analyze", "normalize", "filter"]
    assert len(stages["analyze"]) == (2 if recipe == "g2net" else 1)  # the strain's PSD pass, then the moments
    for stage, names in stages.items():
        for number, name in enumerate(names):
            extra = RECIPE_EXPECTED[recipe].get(stage, []) if number == 0 else []  # a stage's first pipeline
            wanted = [name.format(recipe=recipe) for name in EXPECTED[stage] + extra]
            built = {t.unique_name for t in _pipeline(plans, name).components.transforms.values()}
            assert not [w for w in wanted if w not in built], f"{name}: missing {set(wanted) - built}"
            assert wanted[0].split("/")[0] in (plans / f"{name}.txt").read_text().split()


def test_the_job_runs_in_the_named_image_and_stages_the_sdist(planned):
    from apache_beam.portability.api import beam_runner_api_pb2

    _, _, plans, _ = planned
    index = _index(plans)
    for entry in index["plans"]:
        assert entry["runner"] == "DataflowRunner"
        assert entry["container_images"] == [IMAGE]
        assert entry["staged"]["workflow.tar.gz"] == "staging/workflow.tar.gz"  # what --setup_file stages
        pipeline = _pipeline(plans, entry["name"])
        (environment,) = pipeline.components.environments.values()
        assert environment.urn == "beam:env:docker:v1"
        assert beam_runner_api_pb2.DockerPayload.FromString(environment.payload).container_image == IMAGE
    with tarfile.open(plans / "staging" / "workflow.tar.gz") as sdist:
        members = set(sdist.getnames())
    for module in ("beam_pipelines/runtime/dry_run.py", "transforms/contract.py", "model/__init__.py", "setup.py"):
        assert f"sigforge-0.1.0/{module}" in members
    assert not [p for p in os.listdir(plans / "staging") if p not in ("workflow.tar.gz",)]
    # Beam's temporary folders (the sdist's, each pipeline's) are gone; its requirements cache is kept, as in a run
    caches = ("beam-requirements-cache", "dataflow-requirements-cache")  # its name differs by Beam release
    assert [name for name in planned[3] if name not in caches] == []


def _portable_urns() -> set[str]:
    from apache_beam.portability import common_urns

    groups = (common_urns.primitives, common_urns.composites, common_urns.combine_components)
    return {getattr(group, name).urn for group in groups for name in dir(group) if name.isupper()} | {
        getattr(common_urns.sdf_components, name).urn for name in dir(common_urns.sdf_components) if name.isupper()
    }


def test_the_graphs_hold_only_portable_transforms(planned):
    """Runner v2 runs portable primitives in the Python SDK's container: no transform that only the Python
    direct runner understands (a pickled PTransform, the deprecated Read), every leaf in the one environment."""
    _, _, plans, _ = planned
    portable = _portable_urns()
    for entry in _index(plans)["plans"]:
        pipeline = _pipeline(plans, entry["name"])
        (environment_id,) = pipeline.components.environments
        for transform in pipeline.components.transforms.values():
            if transform.subtransforms:
                continue
            assert transform.spec.urn in portable, f"{entry['name']}: {transform.unique_name} {transform.spec.urn}"
            if transform.spec.urn == "beam:transform:pardo:v1":
                assert transform.environment_id == environment_id


def _payload_texts(pipeline) -> list[bytes]:
    """The serialized transforms, and the pickled functions inside them decoded (Beam base64s a bz2- or
    zlib-compressed pickle)."""
    from apache_beam.portability.api import beam_runner_api_pb2 as api

    texts = []
    for transform in pipeline.components.transforms.values():
        texts.append(transform.SerializeToString())
        payloads = []
        if transform.spec.urn == "beam:transform:pardo:v1":
            payloads.append(api.ParDoPayload.FromString(transform.spec.payload).do_fn.payload)
        elif transform.spec.urn.startswith("beam:transform:combine"):
            payloads.append(api.CombinePayload.FromString(transform.spec.payload).combine_fn.payload)
        for payload in payloads:
            for decompress in (bz2.decompress, zlib.decompress):
                try:
                    texts.append(decompress(base64.b64decode(payload)))
                    break
                except (OSError, ValueError, zlib.error):
                    continue
    return texts


LOCAL_PATH = re.compile(rb"(?:/tmp|/work|/home|/root|/var|/Users|/private)/[\x21-\x7e]*")


def test_no_local_path_leaks_into_the_graphs(planned):
    """Every dataset path in the graphs is the gs:// dataset's. Allowed local strings: source file names of
    functions pickled by value (cloudpickle keeps ``co_filename``; it names no data), the build's local --input,
    and tf.Transform's SavedModels under the plans folder (tf.Transform writes one per analysis phase while
    building the graph; a dry run writes them there, where a run uses OUT/.tmp_analyze on gs://). The Docker
    environment's artifacts (the local sdist Beam uploads when it submits) are staging, not the graph."""
    _, raw, plans, _ = planned
    allowed = {"build": str(raw), "analyze": str(plans / "tft_tmp")}
    for entry in _index(plans)["plans"]:
        found = set()
        for text in _payload_texts(_pipeline(plans, entry["name"])):
            found |= {match.decode("utf-8", "replace") for match in LOCAL_PATH.findall(text)}
        prefix = allowed.get(entry["stage"])
        leaks = sorted(
            path for path in found if not re.search(r"\.py[c]?$", path) and not (prefix and path.startswith(prefix))
        )
        assert not leaks, f"{entry['name']}: local paths {leaks[:5]}"
        if entry["stage"] == "analyze":
            assert any(path.startswith(allowed["analyze"]) for path in found)  # the check sees pickled paths


def test_a_local_dry_run_writes_only_its_plans(tce_raw, tmp_path, monkeypatch):
    """The default runner on a local folder: every stage is built and serialized, nothing runs, and OUT ends up
    holding plans/ only (no manifest, no lock, no .tmp_ folder, no report)."""
    from beam_pipelines.commands import cli

    out, temp = tmp_path / "out", tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    argv = ["run", "--config", "run_configs/tce_kepler.yaml", "--input", str(tce_raw), "--output", str(out)]
    assert cli.main([*argv, "--dry-run"]) == 0
    assert sorted(os.listdir(out)) == ["plans"]
    assert os.listdir(temp) == []  # Beam's folder of each pipeline, removed when it runs, is removed
    index = _index(out / "plans")
    assert [e["name"] for e in index["plans"]] == ["build", "split", "analyze", "normalize"]
    assert {e["runner"] for e in index["plans"]} == {"FnApiRunner"}
    assert index["table_columns"][:4] == ["uid", "target_id", "label", "shard"]
    # a stage alone needs no earlier output; a rerun replaces the plans it lists; Beam's own flag asks for a dry run
    assert (
        cli.main(["split", "--config", "run_configs/tce_kepler.yaml", "--output", str(out), "--", "--dry_run=True"])
        == 0
    )
    assert [e["name"] for e in _index(out / "plans")["plans"]] == ["split"]
    assert not (out / "plans" / "analyze.json").exists()
    assert sorted(os.listdir(out)) == ["plans"]


def test_the_worker_image_is_built_on_the_pinned_beam():
    """docker/Dockerfile's default base image is the Beam SDK container of setup.py's apache-beam pin and of this
    interpreter's Python (the SDK harness in the image and the submitting SDK must agree). Docker itself is not
    run here."""
    import sys

    pin = re.search(r'"apache-beam\[[a-z,]+\]==([0-9.]+)"', (REPO / "setup.py").read_text()).group(1)
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert f"ARG BEAM_VERSION={pin}\n" in dockerfile
    assert f"ARG PYTHON_VERSION={sys.version_info.major}.{sys.version_info.minor}\n" in dockerfile
    assert "FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION}" in dockerfile
    assert "COPY dist/*.whl" in dockerfile


def test_the_image_profile_stages_no_setup_file():
    from beam_pipelines.runtime.options import make_pipeline_options, with_profile
    from transforms.config import ConfigError

    profile = str(REPO / "run_configs" / "dataflow_image.yaml")
    given = DATAFLOW[1:5]  # project, region, buckets
    with pytest.raises(ConfigError, match="sdk_container_image"):
        with_profile(profile, given)
    options = make_pipeline_options(with_profile(profile, [*given, f"--sdk_container_image={IMAGE}"]))
    assert options.get_all_options()["sdk_container_image"] == IMAGE
    assert options.get_all_options()["setup_file"] is None
