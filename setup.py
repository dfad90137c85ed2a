"""Distribution `sigforge`: Beam pipelines that turn raw time series into leakage-free ML datasets.

This file is also what Dataflow workers install (`--setup_file ./setup.py`).
"""

from setuptools import find_packages, setup

# Pinned together: tensorflow-transform 1.21 needs tfx-bsl 1.21 and tensorflow < 2.22.
# Beam is pinned to the Flink runner's version: the Python SDK and the Flink job server must be the same Beam
# release, and Maven Central (as this project's CI reaches it) serves org.apache.beam:beam-runners-flink-1.19 at
# 2.70.0 at newest and no shaded beam-runners-flink-*-job-server jar at all, so `make engines` assembles the job
# server from the runner's Maven artifacts (engines/flink/pom.xml). Beam 2.70 caps numpy < 2.3, pyarrow < 19 and
# grpcio < 1.66 (hence tensorboard 2.20: 2.21 needs grpcio >= 1.74); its tfrecord extra (crcmod) keeps its
# tfrecordio from warning on import (google-crc32c still computes the checksums).
INSTALL_REQUIRES = [
    "apache-beam[gcp,tfrecord]==2.70.0",
    "tensorflow==2.21.0",
    "tensorflow-transform==1.21.0",
    "tfx-bsl==1.21.0",
    "numpy>=2.0,<2.3",
    "scipy>=1.13,<1.18",
    "pyarrow>=16,<19",
    "matplotlib>=3.8,<3.12",
    "astropy>=6.0,<8.1",
    "pyyaml>=6.0,<7",
    "pydantic>=2.5,<3",
    "tensorboard>=2.20,<2.22",
    "tqdm>=4.66,<5",
    # Waveforms, PSDs, detectors, matched filter. pycbc 2.11 caps numpy < 2.4 and scipy < 1.17; 2.10 does not.
    "lalsuite>=7.26,<7.27",
    "pycbc>=2.10,<2.11",
]

setup(
    name="sigforge",
    version="0.1.0",
    description="Distributed Beam + tf.Transform pipelines from raw time series to normalized TFRecord datasets",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["beam_pipelines*", "transforms*", "model*"]),
    install_requires=INSTALL_REQUIRES,
    # lightkurve: tests only (tests/e2e/test_tce_lightkurve.py writes files with it). Its metadata caps pandas < 3;
    # where pandas 3 is installed: pip install --no-deps lightkurve==2.6.0 memoization scikit-learn joblib
    # threadpoolctl cloudpickle narwhals (docs/lightkurve.md).
    extras_require={"dev": ["pytest>=7.4", "ruff>=0.5", "lightkurve>=2.6,<2.7"]},
    entry_points={"console_scripts": ["sigforge=beam_pipelines.commands.cli:entry"]},
)
