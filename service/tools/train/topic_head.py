"""A learned correction of the topic map, trained on labelled regions of photographs outside the check.

The map (topics.py) sums ImageNet class probabilities, so it cannot name what ImageNet has no class
for (a micrograph, a deep-sky photograph, an astronaut: "Science & Space"), and a photograph the
network is unsure of spreads its probability over many classes, which favours the topic with the
most classes (Animals & Pets has 400). The head adds to the log of the map's topic probabilities a
linear function of the network's 1,280 pooled features, trained on regions a person labelled on
photographs from PyPI wheels that are not in the real-photo check (topic_regions.json):

    topic scores = softmax(log(map probabilities) + W · features + b)

With W and b at zero this is the map itself; the training loss pulls W and b only as far as the
labelled regions ask, against an L2 penalty, so topics the regions do not show keep the map's say.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from service.tools.train import lite0, regions, topics, wheels

TABLE = Path(__file__).with_name("topic_regions.json")
ZOOM = (0.7, 1.4)       # the window relative to Pinpoint's own: other framings of the same scene
PER_REGION = 16         # training crops drawn from each region (points, framings and flips)
EPSILON = 1e-6          # floor of a map probability before its log
# Chosen on the dev points of the topic check (docs/demo-models.md): L2 from 1e-4 to 1 tried; 0.03-0.3
# gave the same dev top-1, weaker penalties overfit the few photographs. Version 2's regions, averaged
# over three seeds of the crops: 0.01-0.3 within a point of each other, 1 four points worse.
L2, EPOCHS = 0.1, 40


@functools.cache
def table() -> dict:
    return json.loads(TABLE.read_text(encoding="utf-8"))


# Scans stored as raw arrays rather than image files: how each becomes 8-bit pixels (the table's
# `decode` says the same in words). DICOM, FITS and NIfTI files need readers this project does not
# depend on, so their regions are skipped (usable() says which).
RAW = {
    "mri_head": lambda data: _stretch(np.frombuffer(gzip.decompress(data), "<u2").reshape(256, 256)),
    "raccoon": lambda data: np.frombuffer(bz2.decompress(data), np.uint8).reshape(768, 1024, 3),
}


def _stretch(values: np.ndarray) -> np.ndarray:
    return (values.astype(np.float64) / max(float(values.max()), 1.0) * 255).astype(np.uint8)


def usable(name: str) -> bool:
    return name in RAW or Path(table()["photos"][name]["file"]).suffix.lower() in (".png", ".jpg", ".jpeg", ".tif",
                                                                                   ".tiff", ".gif", ".bmp", ".webp")


@functools.cache
def photo(name: str) -> Image.Image:
    entry = table()["photos"][name]
    data = wheels.read(entry["wheel"], entry["file"], entry["sha256"])
    if name in RAW:
        pixels = RAW[name](data)
        return Image.fromarray(pixels).convert("RGB")
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.mode.startswith("I"):  # 16-bit greyscale (a fluorescence TIFF): values already 0..255
            return Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8)).convert("RGB")
        if image.mode in ("RGBA", "LA", "P"):
            image = image.convert("RGBA")
            ground = Image.new("RGBA", image.size, (0, 0, 0, 255))  # space behind the Earth, as labelled
            image = Image.alpha_composite(ground, image)
        return image.convert("RGB")


def crops(seed: int, per_region: int = PER_REGION) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 [N, 224, 224, 3] windows cut as Pinpoint cuts them at random points of each region, their
    topic indexes [N] and region indexes [N] (so a split can keep a region's crops together)."""
    rng = np.random.default_rng([seed, 20])
    images, labels, owners = [], [], []
    for number, region in enumerate(table()["regions"]):
        if region.get("model", "theme") != "theme" or not usable(region["photo"]):
            continue
        image = photo(region["photo"])
        left, top, right, bottom = region["box"]
        for _ in range(per_region):
            zoom = float(np.exp(rng.uniform(np.log(ZOOM[0]), np.log(ZOOM[1]))))
            x, y = rng.uniform(left, right), rng.uniform(top, bottom)
            window = regions.window(image, x, y, zoom, topics.SIZE, topics.FRACTION, topics.MIN_PX, topics.RESIZE)
            if rng.random() < 0.5:
                window = window.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            images.append(np.asarray(window, dtype=np.uint8))
            labels.append(topics.TOPIC_LABELS.index(region["label"]))
            owners.append(number)
    return np.stack(images), np.array(labels), np.array(owners)


def network_outputs(network, images: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(pooled features [N, 1280], log map probabilities [N, topics]) of the pretrained network."""
    import keras

    pooled = network.get_layer(index=-2).output  # the global average pooling before the classifier
    both = keras.Model(network.input, [pooled, network.output])
    features, classes = both.predict(images.astype(np.float32) * lite0.SCALE + lite0.OFFSET, batch_size=batch,
                                     verbose=0)
    return features, np.log(np.maximum(classes @ topics.topic_matrix(), EPSILON))


def fit(features: np.ndarray, log_map: np.ndarray, labels: np.ndarray, *, l2: float, epochs: int = 40,
        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """W [1280, topics] and b [topics] minimising cross-entropy of softmax(log_map + features·W + b),
    every topic the regions show weighted equally (rare topics count as much as common ones). Topics
    the regions do not show keep W and b at zero: the head has no evidence about them, so it must not
    learn to push them down merely because no region was labelled with them."""
    import keras

    keras.utils.set_random_seed(seed)
    classes = len(topics.TOPIC_LABELS)
    counts = np.bincount(labels, minlength=classes)
    shown = np.flatnonzero(counts)
    weights = len(labels) / (counts[labels] * len(shown))
    scatter = np.zeros((len(shown), classes), np.float32)
    scatter[np.arange(len(shown)), shown] = 1.0
    feature_in = keras.Input((features.shape[1],))
    offset_in = keras.Input((classes,))
    head = keras.layers.Dense(len(shown), kernel_regularizer=keras.regularizers.L2(l2), kernel_initializer="zeros")
    spread = keras.layers.Dense(classes, use_bias=False, trainable=False)
    outputs = keras.layers.Softmax()(keras.layers.Add()([offset_in, spread(head(feature_in))]))
    model = keras.Model([feature_in, offset_in], outputs)
    spread.set_weights([scatter])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit([features, log_map], labels, sample_weight=weights.astype(np.float32), batch_size=64,
              epochs=epochs, verbose=0, shuffle=True)
    kernel, bias = head.get_weights()
    return kernel @ scatter, bias @ scatter


def build_with_head(weights: dict[str, np.ndarray], kernel: np.ndarray, bias: np.ndarray):
    """Keras: normalised [batch, 224, 224, 3] -> softmax(log(map probabilities) + features·W + b)."""
    import keras
    from keras import layers

    network = lite0.build(weights)
    pooled = network.get_layer(index=-2).output
    summed = layers.Dense(len(topics.TOPIC_LABELS), use_bias=False, trainable=False, name="topics")
    mapped = summed(network.output)
    log_map = layers.Lambda(lambda p: keras.ops.log(keras.ops.maximum(p, EPSILON)), name="log_map")(mapped)
    head = layers.Dense(len(topics.TOPIC_LABELS), name="head")
    outputs = layers.Softmax(name="topic_scores")(layers.Add()([log_map, head(pooled)]))
    model = keras.Model(network.input, outputs, name="theme")
    summed.set_weights([topics.topic_matrix()])
    head.set_weights([kernel, bias])
    return model
