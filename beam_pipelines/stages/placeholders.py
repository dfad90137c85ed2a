"""What a dry run builds in place of what an earlier stage would have written (``beam_pipelines/runtime/dry_run.py``).

analyze builds each pass after the first from the previous pass's statistics, and normalize applies the
``transform_fn`` analyze wrote. A dry run has neither, so it traces the recipe's preprocessing_fn in a TF1 graph
(no data, no Beam) to learn the shapes of the named statistics and the transformed schema, and fills the
statistics with ones. The graph a dry run writes is the real one in every step; only these constants and the
``transform_fn`` folder's contents are stand-ins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import apache_beam as beam
import numpy as np


def _trace(preprocessing_fn, raw_spec: dict[str, Any]):
    """(graph, outputs) of ``preprocessing_fn`` applied to parsed placeholders of ``raw_spec``."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        serialized = tf.compat.v1.placeholder(tf.string, [None])
        outputs = preprocessing_fn(tf.io.parse_example(serialized, raw_spec))
    return graph, outputs


def stats(preprocessing_fn, raw_spec: dict[str, Any], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Ones in the shape and dtype of each statistic ``names`` that ``preprocessing_fn`` names (``tf.identity``),
    as ``analyze.read_stats`` would read them back after the pass ran."""
    graph, _ = _trace(preprocessing_fn, raw_spec)
    named = {op.name.rsplit("/", 1)[-1]: op.outputs[0] for op in graph.get_operations() if op.type == "Identity"}
    missing = sorted(set(names) - set(named))
    if missing:
        raise RuntimeError(f"the preprocessing_fn names no statistics {missing}")
    return {name: np.ones(named[name].shape.as_list(), named[name].dtype.as_numpy_dtype) for name in names}


def transformed_metadata(recipe: Any, config: Any):
    """The ``DatasetMetadata`` of the last analysis pass's outputs (the schema normalize writes), traced with
    placeholder statistics for every pass."""
    import tensorflow_transform as tft
    from tensorflow_transform import schema_inference

    raw_spec = recipe.raw_feature_spec(config)
    previous: dict[str, np.ndarray] = {}
    passes = recipe.analysis_passes(config)
    for analysis in passes[:-1]:
        previous = stats(analysis.make_fn(previous), raw_spec, analysis.stat_names)
    graph, outputs = _trace(passes[-1].make_fn(previous), raw_spec)
    with graph.as_default():
        schema = schema_inference.infer_feature_schema(outputs, graph)
    return tft.DatasetMetadata(schema)


class PlannedTransformFn(beam.PTransform):
    """``tft_beam.ReadTransformFn(path)`` with the metadata given instead of read from ``path``: the same step
    (``CreateTransformFnPath``, the ``transform_fn`` folder the workers would load), nothing read at build time."""

    def __init__(self, path: str, metadata: Any):
        super().__init__()
        self._path = path
        self._metadata = metadata

    def expand(self, pvalue):
        import tensorflow_transform as tft

        from beam_pipelines.dataset import fs

        transform_fn_path = fs.join(self._path, tft.TFTransformOutput.TRANSFORM_FN_DIR)
        saved_model_dir = pvalue.pipeline | "CreateTransformFnPath" >> beam.Create([transform_fn_path])
        return saved_model_dir, self._metadata
