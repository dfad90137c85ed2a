"""The Recipe protocol: everything a data domain supplies so that no stage ever names a domain.

A recipe (G2Net strain, TCE light curves, ...) is one package under ``transforms/recipes/`` with one object that
satisfies ``Recipe``, registered in ``transforms.recipes.REGISTRY``. Stages ask it; see docs/ARCHITECTURE.md
section 6 ("Adding a recipe"). Nothing here imports Beam: the recipe's build PTransform is named by an import
path (``module:attribute``) that the build stage resolves, so ``transforms/`` stays Beam-free.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

# A tf.Transform preprocessing_fn: a plain dict -> dict function of tensors.
PreprocessingFn = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class AnalysisPass:
    """One streaming tf.Transform pass over the train split.

    ``make_fn(previous)`` returns the pass's ``preprocessing_fn`` given the statistics the previous pass read
    back (``{}`` for the first); ``stat_names`` are the named analyzer results read back after it. The last
    pass's transform graph is the one the normalize stage applies.
    """

    name: str
    make_fn: Callable[[dict[str, np.ndarray]], PreprocessingFn]
    stat_names: tuple[str, ...]


class Serving(Protocol):
    """A recipe's predict step: raw input files -> raw serialized tf.Examples, as its build stage writes them.

    The trainer's predict (``model/predict.py``) applies the dataset's saved transform graph and the model to
    these examples, so serving goes through exactly the training preprocessing.
    """

    input_suffix: str  # a folder given to predict is searched for files ending in this (".npy")

    def example_id(self, path: str) -> str:
        """The sample id of an input file (as the build stage derives it)."""

    def serve_examples(self, config: Any, items: list[tuple[str, bytes]]) -> list[bytes | Exception]:
        """(id, file bytes) -> the raw serialized example, or the exception saying why that input is unusable."""

    def describe(self, config: Any) -> str:
        """One log line naming the build settings applied (e.g. the bandpass)."""


@runtime_checkable
class Recipe(Protocol):
    """What a data domain supplies to the stages, the CLI and the trainer.

    Optional (not required by ``isinstance``): ``report_figures`` as in ``ReportFigures``, the recipe's own
    figures of ``sigforge report``.
    """

    name: str  # registry key; also the key of the recipe's config section (``g2net:``)
    summary: str  # one line for ``sigforge recipes``
    config_class: type  # pydantic model of the recipe's config section
    build_transform: str  # "module:attribute" of its build PTransform (beam_pipelines/recipes/)
    cap_group_columns: tuple[str, ...]  # bytes features that ``analyze.cap_group_column`` may name
    default_trainer_config: str | None  # run_configs/train_*.yaml, relative to the repository
    baselines: Mapping[str, str]  # baseline kind -> "module:attribute" of its CLI (``sigforge baseline KIND``)
    serving: Serving | None  # the predict step, where the recipe has one

    def raw_feature_spec(self, config: Any) -> dict[str, Any]:
        """Feature spec of the raw and split shards (tf.io.FixedLenFeature per feature)."""

    def analysis_passes(self, config: Any) -> list[AnalysisPass]:
        """The tf.Transform passes of the analyze stage, in order."""

    def check_train_split(self, config: Any, train_split: Mapping[str, Any]) -> str | None:
        """A message why the train split (its manifest entry) cannot give statistics, or None."""

    def stats_files(self, config: Any, stats: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        """The ``OUT/stats/*.npz`` files (name -> arrays) written from the final pass's statistics."""

    def stats_summary(self, config: Any, stats: dict[str, np.ndarray]) -> dict[str, Any]:
        """The statistics recorded in the manifest's analyze entry (JSON-able)."""

    def make_sample(self, out: str, n: int, seed: int, **options: Any) -> dict[str, Any]:
        """Writes realistic raw sample data to ``out``; returns a summary (counts, paths)."""


class ReportFigures(Protocol):
    """The optional report hook of a recipe (``transforms/report/page.py`` calls it when a recipe has it)."""

    def report_figures(self, config: Any, out: str, manifest: Mapping[str, Any], fs: Any) -> list[Any]:
        """The recipe's figures (``transforms.report.figures.Figure``) of dataset ``out``; ``fs`` is the report's
        file API (``transforms.report.data.ReportFiles``). Draw only what the folder has the inputs for."""


def example_scale_fn(recipe: Any, config: Any) -> Callable[[bytes], float | None] | None:
    """The recipe's optional ``example_scale(config, serialized) -> float | None`` (the amplitude of one raw
    example, for the analyze stage's outlier guard) bound to ``config``, or None when the recipe has none."""
    method = getattr(recipe, "example_scale", None)
    return None if method is None else functools.partial(method, config)


def resolve(path: str) -> Any:
    """The object named by ``"package.module:attribute"``."""
    module, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"{path!r} is not of the form 'module:attribute'")
    return getattr(importlib.import_module(module), attribute)


def default_check_train_split(train_split: Mapping[str, Any]) -> str | None:
    """The check every recipe needs: a non-empty train split."""
    if not train_split.get("examples", 0):
        return "the train split is empty; check the split fractions"
    return None
