"""Keras trainer for normalized sigforge datasets: tf.data input, networks, training, artifacts, evaluation.

Entry points: ``python -m model.train`` (:func:`model.train.train`, :func:`model.train.main`) and
``python -m model.evaluate`` (:func:`model.evaluate.evaluate`, :func:`model.evaluate.main`). Importing this package
is cheap: TensorFlow is imported by the submodules that need it.
"""
