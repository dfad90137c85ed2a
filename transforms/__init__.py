"""sigforge's Beam-free core: config schema, dataset contract, recipes, numeric transforms, audit."""

import warnings

# setup.py pins Beam 2.70 (the newest whose Flink runner Maven Central serves here), which caps grpcio < 1.66.
# Google's client libraries, imported by `import apache_beam`, then warn on every import that grpcio < 1.83 lacks
# post-quantum TLS and will be unsupported from April 2027: nothing a sigforge user can act on, so not printed.
# Set here because sigforge's commands import this package before Beam.
warnings.filterwarnings("ignore", message=r".*Post-Quantum Cryptography", category=FutureWarning)
