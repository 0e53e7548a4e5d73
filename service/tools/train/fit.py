"""The training loop both models share: uint8 patches in memory, normalised and flipped on the fly."""

from __future__ import annotations

import math
import time

import numpy as np


def seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except AttributeError:  # older TensorFlow
        pass


def limit_threads(threads: int) -> None:
    """Training shares the machine (2 cores here); say how many cores TensorFlow may use."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this process (tests, second model)
        pass


def train(model, images: np.ndarray, labels: np.ndarray, *, scale: float, offset: float, epochs: int,
          batch_size: int, learning_rate: float, seed: int, label_smoothing: float = 0.05,
          rotate: bool = False, max_steps: int | None = None, log=print) -> dict:
    """Adam with a cosine-decayed learning rate; returns the history and the wall time."""
    import keras
    import tensorflow as tf

    classes = int(model.output_shape[-1])
    batch_size = min(batch_size, len(images))

    def prepare(batch_images, batch_labels):
        values = tf.cast(batch_images, tf.float32) * scale + offset
        values = tf.image.random_flip_left_right(values, seed=seed)
        if rotate:  # colour and most prints have no up; rot90 multiplies the variety for free
            values = tf.image.rot90(values, k=tf.random.uniform([], 0, 4, tf.int32, seed=seed))
        return values, tf.one_hot(batch_labels, classes)

    data = (tf.data.Dataset.from_tensor_slices((images, labels))
            .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size, drop_remainder=True)
            .map(prepare, num_parallel_calls=1, deterministic=True)
            .prefetch(2))
    if max_steps is not None:  # smoke runs: a fixed number of optimizer steps, one pass
        data, epochs = data.repeat().take(max_steps), 1
    steps = max_steps or max(1, epochs * (len(images) // batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                  metrics=["accuracy"])
    started = time.monotonic()

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log(f"  epoch {epoch + 1}/{epochs}: loss {logs.get('loss', math.nan):.3f} "
                f"accuracy {logs.get('accuracy', math.nan):.3f} ({time.monotonic() - started:.0f} s)")

    history = model.fit(data, epochs=epochs, verbose=0, callbacks=[Progress()])
    return {"history": history.history, "seconds": time.monotonic() - started}
