"""The `facegate` command: one entry point, a table of command groups.

Each group is one module of `facegate.apps` with a `register(subparsers)` function that adds its parser
and binds each subcommand to one small function with `set_defaults(func=...)`; dispatch is that and
nothing else. The command line as typed travels on `args.command_line`, so every result records how it
was made. Errors derived from FacegateError are printed as one line and become the exit codes of
:data:`facegate.edge.errors.EXIT_CODES` (the README's table).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import sys

from facegate.edge.errors import EXIT_INTERRUPTED, OS_ERROR_EXIT_BY_COMMAND, FacegateError, os_error_message
from facegate.edge.quiet import quiet_native_imports

log = logging.getLogger("facegate")

#: the command groups, in the order `facegate --help` lists them: module under facegate.apps
COMMAND_GROUPS: tuple[str, ...] = (
    "demo",        # demo: the README's main job
    "enroll",      # enroll
    "match",       # verify, identify
    "admin",       # gallery ls|rm|rename|rekey|export|import|check|reembed|convert|rebind|keygen
    "door",        # door run
    "audit",       # audit verify
    "detect",      # detect
    "liveness",    # liveness check|train
    "review",      # cluster
    "bench",       # bench pipeline|gallery|detector|embedder
    "evaluate",    # eval lfw|pairs|wider|lfw-detect|celebrity5
    "export",      # export
    "prune",       # prune
    "calibrate",   # calibrate thresholds|detector
    "distill",     # distill embedder|compress|head|detector|export-detector|holdout|pack|import
    "teachers",    # teachers fetch|build|export-mtcnn
    "hardware",    # hardware profiles|bundle|selftest|emulate
    "site",        # site init|serve
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facegate", description="Face verification on small boards: run the door "
                                     "unit and its gallery, convert and measure the models. Start with `facegate demo`.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_GROUPS:
        importlib.import_module(f"facegate.apps.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = "facegate " + shlex.join(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:   # quiet by default: native start-up chatter shows with -v
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        quiet_native_imports(("tensorflow",))
        logging.getLogger("tensorflow").setLevel(logging.WARNING)   # "Assets written to ..." per export
    try:
        return int(args.func(args) or 0)
    except FacegateError as exc:
        print(f"facegate: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("facegate: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:     # a path no specific check caught: a message and the area's exit code
        print(f"facegate: error: {os_error_message(exc)}", file=sys.stderr)
        return OS_ERROR_EXIT_BY_COMMAND.get(args.command, 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
