"""The `meshkit` command: mesh info, decimation, spirals, rendering, hierarchies, BFM tools, 300W-LP preprocessing, demo.

This module only dispatches. The subcommands come from one explicit table, the entry-point group
``meshkit.commands`` in pyproject.toml (``core = meshkit.commands``, ``sampling = sampling.cli``,
``bfm = bfm.cli``): each module there has ``add_commands(subparsers)``, which declares its
subcommands and sets ``func`` to their handlers, and may have ``DEMO_STEPS``, functions
(args, vertices, faces) that ``meshkit demo`` runs after writing the template, ordered by the
module's ``DEMO_STAGE`` (core 0, sampling 1, bfm 2), and ``WARMUP_STEPS``, (name, callable)
pairs that ``meshkit warmup`` runs to compile the module's numba kernels into numba's cache.
Modules are taken core first, then by entry-point name, so ``--help`` is stable. Errors from bad
input are printed as one line naming the problem, with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

from . import __version__

__all__ = ["GROUP", "command_modules", "demo_steps", "warmup_steps", "build_parser", "main"]

GROUP = "meshkit.commands"


def command_modules() -> list:
    """The modules of the ``meshkit.commands`` entry-point group, loaded: core first, then by name."""
    eps = sorted(entry_points(group=GROUP), key=lambda ep: (ep.name != "core", ep.name))
    if not eps:
        raise RuntimeError(f"no '{GROUP}' entry points found: the meshkit distribution is not installed "
                           "(pip install -e . in the source tree), so the meshkit command has no subcommands")
    return [ep.load() for ep in eps]


def demo_steps() -> list:
    """The ``DEMO_STEPS`` of every command module, by ``DEMO_STAGE`` (then module order)."""
    modules = sorted(command_modules(), key=lambda m: getattr(m, "DEMO_STAGE", 0))
    return [step for m in modules for step in getattr(m, "DEMO_STEPS", [])]


def warmup_steps() -> list:
    """The ``WARMUP_STEPS`` of every command module, (name, callable) pairs in module order (core first)."""
    return [step for m in command_modules() for step in getattr(m, "WARMUP_STEPS", [])]


def build_parser() -> argparse.ArgumentParser:
    """The ``meshkit`` argument parser with every command module's subcommands."""
    parser = argparse.ArgumentParser(prog="meshkit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"meshkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in command_modules():
        module.add_commands(sub)
    return parser


def main(argv=None) -> int:
    try:
        parser = build_parser()
    except RuntimeError as e:  # the table is empty: say so instead of offering nothing
        print(f"meshkit: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, OSError) as e:
        print(f"meshkit {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
