"""`python -m pipeline spaces [show NAME [--json]]`: the registered search spaces and their candidates.

The list comes from the registry, so it shows the package's spaces and those of the params file's
`plugins:`; the candidates of each edge depend on the search settings (the DARTS cell's node count), which
come from the params file's `search` section.
"""

from __future__ import annotations

import argparse
import json

from pipeline.config import load_params
from pipeline.errors import PipelineError
from pipeline.space.base import get_space, list_spaces
from pipeline.stages.common import add_params_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_params_argument(parser)
    parser.add_argument("action", nargs="?", choices=["list", "show"], default="list",
                        help="list the spaces (default) or show one")
    parser.add_argument("name", nargs="?", help="the space `show` prints")
    parser.add_argument("--json", action="store_true", help="`show` as JSON")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    settings = params.search
    if args.action == "list":
        for name in list_spaces():
            space = get_space(name)
            cells = ", ".join(f"{c.name} ({c.num_edges} edges x {c.num_candidates})" for c in space.cells(settings))
            summary = (type(space).__doc__ or "").strip().splitlines()[0]
            print(f"{name:<16} {space.data_kind:<6} {cells}  {summary}")
        return 0
    if not args.name:
        raise PipelineError("spaces show: name the space (python -m pipeline spaces lists them)")
    try:
        space = get_space(args.name)
    except KeyError as exc:
        raise PipelineError(exc.args[0]) from None
    description = space.describe(settings)
    if args.json:
        print(json.dumps(description, indent=2))
        return 0
    print(f"{space.name}: {description['data_kind']} data; derivation rules: {', '.join(description['derive_rules'])}")
    for cell in description["cells"]:
        print(f"{cell['name']} cell, {len(cell['edges'])} edges:")
        for e, ops in enumerate(cell["edges"]):
            print(f"  edge {e:>2}: {', '.join(ops)}")
    return 0
