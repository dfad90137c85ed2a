"""Custom Keras layers and schedules, registered so a saved ``.keras`` model reloads without custom_objects."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sigforge")
class GeMPooling1D(keras.layers.Layer):
    """Generalized-mean pooling over the time axis: ``(mean_t clamp(x, eps)^p)^(1/p)``.

    Input ``(batch, steps, channels)`` (channels last), output ``(batch, channels)``. ``p = 1`` is average
    pooling, ``p -> inf`` tends to max pooling. ``p`` is one learnable scalar (initial ``p``, used as
    ``max(p, p_min)``); inputs are clamped to ``eps`` so the power is defined for non-positive activations.
    The mean is taken of ``(x / max_t x)^p`` and rescaled, so large ``p`` does not overflow float32.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, trainable_p: bool = True, p_min: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if p < p_min:
            raise ValueError(f"GeM initial p ({p}) must be >= p_min ({p_min})")
        if eps <= 0:
            raise ValueError(f"GeM eps must be positive, got {eps}")
        self.initial_p = float(p)
        self.eps = float(eps)
        self.trainable_p = bool(trainable_p)
        self.p_min = float(p_min)
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def build(self, input_shape):
        self.p = self.add_weight(
            name="p",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_p),
            trainable=self.trainable_p,
        )

    def call(self, inputs):
        p = ops.cast(ops.maximum(self.p, self.p_min), inputs.dtype)
        x = ops.maximum(inputs, ops.cast(self.eps, inputs.dtype))
        scale = ops.max(x, axis=1, keepdims=True)
        pooled = ops.power(ops.mean(ops.power(x / scale, p), axis=1), 1.0 / p)
        return pooled * ops.squeeze(scale, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update({"p": self.initial_p, "eps": self.eps, "trainable_p": self.trainable_p, "p_min": self.p_min})
        return config


@keras.saving.register_keras_serializable(package="sigforge")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to ``peak_lr`` over ``warmup_steps``, then cosine decay to ``final_lr`` at ``total_steps``.

    Step ``s`` (0-based optimizer iterations): ``peak_lr * (s + 1) / warmup_steps`` while ``s < warmup_steps``,
    then ``final_lr + (peak_lr - final_lr) * (1 + cos(pi * t)) / 2`` with ``t = (s - warmup) / (total - warmup)``
    clipped to [0, 1].
    """

    def __init__(self, peak_lr: float, total_steps: int, warmup_steps: int = 0, final_lr: float = 0.0):
        if total_steps < 1 or warmup_steps < 0:
            raise ValueError(f"need total_steps >= 1 and warmup_steps >= 0, got {total_steps}, {warmup_steps}")
        self.peak_lr = float(peak_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(min(warmup_steps, total_steps))
        self.final_lr = float(final_lr)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = float(max(self.warmup_steps, 1))
        warm = self.peak_lr * (step + 1.0) / warmup
        span = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.clip((step - float(self.warmup_steps)) / span, 0.0, 1.0)
        cosine = self.final_lr + (self.peak_lr - self.final_lr) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < float(self.warmup_steps), warm, cosine)

    def get_config(self):
        return {
            "peak_lr": self.peak_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "final_lr": self.final_lr,
        }
