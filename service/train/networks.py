"""The two Keras networks. Small on purpose: they are demos that must train on 2 CPU cores.

Both take float input already normalised by Pinpoint (model.toml's scale/offset) and end in a
softmax named by freeze.py, so the served output is a [batch, labels] probability tensor.
"""

from __future__ import annotations

import keras
from keras import layers


def _conv(x, filters: int, kernel: int = 3, strides: int = 1):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def color_net(size: int, classes: int) -> keras.Model:
    """Colour naming needs per-pixel colour features (1×1 convs, a learned colour space) plus a
    little spatial context for highlights (metals), mixtures (multi-colour) and tonal patterns
    (black and white). The centre of the window gets its own pooled summary, because the label
    belongs to the point, not to whatever intrudes at the window's edge."""
    inputs = keras.Input((size, size, 3), name="input")
    colour = _conv(inputs, 24, kernel=1)
    colour = _conv(colour, 32, kernel=1)
    x = _conv(colour, 32)
    x = _conv(x, 48, strides=2)
    x = _conv(x, 64, strides=2)
    x = _conv(x, 96)
    margin = size // 2 - size // 8  # the central quarter (e.g. 8×8 of 32×32) of the pixel features
    centre = layers.Cropping2D(margin)(colour)
    pooled = layers.Concatenate()([
        layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x),
        layers.GlobalAveragePooling2D()(centre), layers.GlobalMaxPooling2D()(centre),
        layers.GlobalAveragePooling2D()(colour),
    ])
    hidden = layers.Dense(128, activation="relu")(pooled)
    hidden = layers.Dropout(0.2)(hidden)
    outputs = layers.Dense(classes, activation="softmax", name="probs")(hidden)
    return keras.Model(inputs, outputs, name="color")


def theme_net(size: int, classes: int) -> keras.Model:
    """Keras MobileNetV2 (alpha 0.35, random initialisation): the architecture a real product
    would serve, so Pinpoint's latency and batching numbers are realistic, at ~0.4 M parameters."""
    base = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=0.35, include_top=False, weights=None, pooling="avg")
    inputs = keras.Input((size, size, 3), name="input")
    hidden = layers.Dropout(0.2)(base(inputs))
    outputs = layers.Dense(classes, activation="softmax", name="probs")(hidden)
    return keras.Model(inputs, outputs, name="theme")
