"""``python -m mobileseg.summary ARCH.yaml --num_classes N --input_size HxW [--json]``.

Builds the network a genotype file describes and prints its parameters and
multiply-accumulates, in total and per block; ``--json`` prints one JSON object
(``params``, ``macs``, ``blocks``) instead. A malformed file, a bad size or class
count is bad input: exit 2 with an error naming the file and the key path.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from mobileseg.cli_flags import parse_size

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Declare the flags (at start-up only, so importing this module declares nothing)."""
    flags.DEFINE_integer("num_classes", 19, "Number of output classes.")
    flags.DEFINE_string("input_size", "512x512", "Input HEIGHTxWIDTH.")
    flags.DEFINE_bool("json", False, "Print one JSON object instead of a table.")


def summarize(path: str, num_classes: int, input_size: tuple[int, int]) -> dict:
    """Params, MACs and per-block costs of the genotype file at ``path``.

    Example:
        >>> import pathlib, tempfile
        >>> arch = pathlib.Path(tempfile.mkdtemp()) / "tiny.yaml"
        >>> _ = arch.write_text('''
        ... name: tiny
        ... branches: [{name: main, source: null, cells: [{op: conv, width: 4, kernel: 1}]}]
        ... head: {op: light, inputs: [{branch: main}], width: 4}
        ... ''')
        >>> summary = summarize(str(arch), num_classes=2, input_size=(8, 8))
        >>> summary["params"], summary["macs"]
        (58, 1536)
    """
    from mobileseg.arch import builder, complexity, schema_io

    genotype = schema_io.load(path)
    model = builder.build_model(genotype, num_classes, input_size)
    costs = complexity.layer_costs(model)
    params, macs = complexity.total(costs)
    return {
        "name": genotype.name, "num_classes": num_classes, "input_size": list(input_size),
        "params": params, "macs": macs,
        "blocks": [{"name": c.name, "kind": c.kind, "output_shape": list(c.output_shape),
                    "params": c.params, "macs": c.macs} for c in costs if c.params or c.macs],
    }


def format_summary(summary: dict) -> str:
    """A per-block table with a total line."""
    lines = [f"{summary['name']} at {summary['input_size'][0]}x{summary['input_size'][1]}, "
             f"{summary['num_classes']} classes",
             f"{'block':<28} {'kind':<22} {'output':<20} {'params':>10} {'MMACs':>9}"]
    for block in summary["blocks"]:
        shape = "x".join(str(d) for d in block["output_shape"][1:]) if block["output_shape"] else ""
        lines.append(f"{block['name']:<28} {block['kind']:<22} {shape:<20} {block['params']:>10,} "
                     f"{block['macs'] / 1e6:>9.2f}")
    lines.append(f"{'total':<28} {'':<22} {'':<20} {summary['params']:>10,} {summary['macs'] / 1e6:>9.2f}")
    lines.append(f"params {summary['params'] / 1e6:.3f} M, MACs {summary['macs'] / 1e9:.3f} G")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from mobileseg.arch.schema_io import GenotypeError

    if len(argv) != 2:
        print("usage: python -m mobileseg.summary ARCH.yaml --num_classes N --input_size HxW [--json]",
              file=sys.stderr)
        return 2
    try:
        summary = summarize(argv[1], FLAGS.num_classes, parse_size(FLAGS.input_size))
    except (GenotypeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary) if FLAGS.json else format_summary(summary))
    return 0


if __name__ == "__main__":
    from mobileseg.console import quiet_native_logs

    quiet_native_logs()
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
