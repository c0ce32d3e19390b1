"""`facegate audit verify LOG`: check a door's audit log (its hash chain, with the rotated files)."""
from __future__ import annotations

import argparse
from pathlib import Path


def cmd_verify(args) -> int:
    from facegate.edge.door.audit import verify
    info = verify(args.log, keep=args.keep)
    print(f"audit log OK: {info['entries']} entries in {', '.join(info['files'])}, last seq {info['last_seq']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("audit", help="audit log tools")
    asub = a.add_subparsers(dest="audit_cmd", required=True)
    v = asub.add_parser("verify", help="check the hash chain of an audit log (and its rotated files)")
    v.add_argument("log", type=Path)
    v.add_argument("--keep", type=int, default=10)
    v.set_defaults(func=cmd_verify)
