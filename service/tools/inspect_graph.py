"""`pinpoint inspect GRAPH.pb`: what a frozen GraphDef takes and gives, as `saved_model_cli show` does
for SavedModels: its placeholders, its candidate outputs (ops nobody consumes), their dtypes and
shapes (service/tools/graph_description.py). `--config` prints a starting model.toml for it instead
(service/tools/config_guess.py), checked against service.serving.repository's reader before it is
printed.
"""

from __future__ import annotations

import argparse
import json
import sys

from service.tools.config_guess import ConfigGuessError, check_config, guess_config
from service.tools.graph_description import GraphDescription, NotAGraph, inspect_file

# --- printing --------------------------------------------------------------------------------------

def render(description: GraphDescription) -> str:
    width = max([len(t.name) for t in (*description.placeholders, *description.outputs)] + [10])
    lines = [f"GraphDef {description.path}: {description.size_bytes:,} bytes, {description.node_count:,} nodes, "
             f"producer version {description.producer}"]
    if description.weights:
        lines.append(f"weights: {description.weights:,} float values in constants ({description.weight_bytes:,} bytes)")
    if description.variables:
        lines.append(f"NOT FROZEN: {len(description.variables)} variable op(s) ({', '.join(description.variables[:3])}"
                     f"{', ...' if len(description.variables) > 3 else ''}): Pinpoint serves frozen graphs")
    if description.text_format:
        lines.append("text format: Pinpoint serves binary GraphDefs (write it with SerializeToString)")
    if not description.shape_inference:
        lines.append(f"shape inference unavailable ({description.import_error}): shapes from node attributes")
    lines += ["", "inputs (placeholders):"]
    for p in description.placeholders:
        extra = "  (with default: optional)" if p.has_default else ""
        lines.append(f"  {p.name:<{width}}  dtype: {p.dtype:<8} shape: {p.shape_text()}{extra}")
    if not description.placeholders:
        lines.append("  (none)")
    lines += ["", "candidate outputs (ops nobody consumes, most likely first):"]
    for t in description.outputs:
        behind = f" <- {t.computes}" if t.computes and t.computes != t.op else ""
        lines.append(f"  {t.name:<{width}}  dtype: {t.dtype:<8} shape: {t.shape_text():<14} op: {t.op}{behind}")
    if not description.outputs:
        lines.append("  (none)")
    ops = ", ".join(f"{op} {count}" for op, count in list(description.op_counts.items())[:8])
    lines += ["", f"ops: {ops}{', ...' if len(description.op_counts) > 8 else ''}"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pinpoint inspect",
        description="Describe a frozen GraphDef: placeholders, candidate outputs, dtypes and shapes.")
    parser.add_argument("graph", help="a frozen GraphDef (.pb, or text format .pbtxt)")
    parser.add_argument("--config", action="store_true", help="print a starting model.toml for the graph instead")
    parser.add_argument("--input", help="the placeholder to feed (with --config; default: guessed)")
    parser.add_argument("--output", help="the output tensor (with --config; default: the best candidate)")
    parser.add_argument("--json", action="store_true", help="the description as JSON")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from service.quiet import import_tensorflow

    import_tensorflow()  # without its C++ notices
    try:
        description = inspect_file(args.graph)
    except NotAGraph as error:
        print(f"pinpoint inspect: {error}", file=sys.stderr)
        return 2
    if not args.config:
        print(json.dumps(description.to_json(), indent=2) if args.json else render(description))
        return 0
    from service.serving.repository import ModelConfigError

    try:
        guess = guess_config(description, args.input, args.output)
        check_config(guess.toml, args.graph, guess.classes)
    except ConfigGuessError as error:
        print(f"pinpoint inspect: {error}", file=sys.stderr)
        return 2
    except ModelConfigError as error:  # a bug here, not the user's: say so plainly
        print(f"pinpoint inspect: the guessed model.toml does not read back ({error})", file=sys.stderr)
        return 1
    print(guess.toml, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
