"""The two Keras networks. Small on purpose: they are demos that must train on 2 CPU cores.

Both take float input already normalised by Pinpoint (model.toml's scale/offset) and end in a
softmax named by freeze.py, so the served output is a [batch, labels] probability tensor.
"""

from __future__ import annotations

import keras
from keras import layers


def _conv(x, filters: int, kernel: int = 3, strides: int = 1, momentum: float = 0.99):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=momentum)(x)
    return layers.ReLU()(x)


def color_net(size: int, classes: int) -> keras.Model:
    """Colour naming needs per-pixel colour features (1×1 convs, a learned colour space) plus a
    little spatial context for highlights (metals), mixtures (multi-colour) and tonal patterns
    (black and white). The centre of the window gets its own pooled summary, because the label
    belongs to the point, not to whatever intrudes at the window's edge."""
    inputs = keras.Input((size, size, 3), name="input")
    colour = _conv(inputs, 24, kernel=1)
    colour = _conv(colour, 32, kernel=1)
    near = _conv(colour, 32)
    x = _conv(near, 48, strides=2)
    x = _conv(x, 64, strides=2)
    x = _conv(x, 96)
    margin = size // 2 - size // 8  # the central quarter (e.g. 8×8 of 32×32) of the pixel features
    centre = layers.Cropping2D(margin)(colour)
    pooled = layers.Concatenate()([
        layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x),
        layers.GlobalAveragePooling2D()(centre), layers.GlobalMaxPooling2D()(centre),
        layers.GlobalAveragePooling2D()(layers.Cropping2D(margin)(near)),
        layers.GlobalAveragePooling2D()(colour),
    ])
    hidden = layers.Dense(128, activation="relu")(pooled)
    hidden = layers.Dropout(0.2)(hidden)
    outputs = layers.Dense(classes, activation="softmax", name="probs")(hidden)
    return keras.Model(inputs, outputs, name="color")


def pattern_net(size: int, classes: int) -> keras.Model:
    """A MobileNet-style CNN: one full 3×3 convolution, then seven depthwise-separable 3×3
    convolutions with BatchNorm and ReLU, halving the resolution four times (96 → 6), then global
    average pooling. ~85 k parameters, ~12 M multiply-adds per 96×96 crop.

    Keras MobileNetV2 (alpha 0.35, random init) was tried first: on 2 cores it trains at half the
    speed and, from scratch in the same budget, reached 77% held-out against this network's 90%+.
    BatchNorm momentum 0.9 (not Keras's 0.99) so the moving averages that the frozen graph uses
    have caught up with the weights after a few thousand steps."""
    inputs = keras.Input((size, size, 3), name="input")
    x = _conv(inputs, 24, strides=2, momentum=0.9)
    for filters, strides in [(32, 1), (48, 2), (64, 1), (96, 2), (128, 1), (160, 2), (192, 1)]:
        x = layers.SeparableConv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
    hidden = layers.Dropout(0.2)(layers.GlobalAveragePooling2D()(x))
    outputs = layers.Dense(classes, activation="softmax", name="probs")(hidden)
    return keras.Model(inputs, outputs, name="pattern")
