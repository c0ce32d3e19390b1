"""`facegate audit verify LOG`: check a door's audit log (keyed chain, genesis, seal, rotated files);
`facegate audit keygen --out FILE`: a door's audit key, made before the door starts (install.sh)."""
from __future__ import annotations

import argparse
from pathlib import Path


def cmd_verify(args) -> int:
    from facegate.edge.door.audit import verify
    info = verify(args.log, key_file=args.key_file)
    unsealed = f" ({info['unsealed']} written after the last seal, before a power cut)" if info["unsealed"] else ""
    older = f", history before entry {info['pruned_before']} rotated away" if info["pruned_before"] > 1 else ""
    print(f"audit log OK: door {info['door']}, key {info['key_id']}, {info['entries']} entries in "
          f"{', '.join(info['files'])}, last seq {info['last_seq']}{unsealed}{older}")
    if info["set_aside"]:
        print(f"note: this chain started by setting aside an unsealed older log ({', '.join(map(str, info['set_aside']))}): "
              "a log whose seal was lost (crash before the first seal, or deleted); those files are not covered")
    return 0


def cmd_keygen(args) -> int:
    from facegate.edge.door.audit import create_key, key_id
    key = create_key(args.out)
    print(f"wrote a new audit key to {args.out} (mode 0600, key id {key_id(key)}); keep a copy off the door: "
          "`audit verify` needs it")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("audit", help="audit log tools")
    asub = a.add_subparsers(dest="audit_cmd", required=True)
    v = asub.add_parser("verify", help="check a door's audit log: every entry's key, the chain, its start and its "
                        "sealed end, and the rotated files")
    v.add_argument("log", type=Path)
    v.add_argument("--key-file", type=Path, default=None,
                   help="the door's audit key (default: LOG.key, as the door creates it; [audit] key_file)")
    v.set_defaults(func=cmd_verify)
    k = asub.add_parser("keygen", help="write a new random audit key (0600); refuses to overwrite one")
    k.add_argument("--out", type=Path, required=True)
    k.set_defaults(func=cmd_keygen)
