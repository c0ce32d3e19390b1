"""`facegate gallery ...`: list, remove, rename, rekey, export/import, check, keygen, re-embed."""
from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

import cv2
import numpy as np

from facegate.apps.common import add_gallery_args, gallery_key
from facegate.edge.errors import GalleryError, KeyFileError
from facegate.edge.gallery import GalleryStore, KeySource
from facegate.edge.gallery.keys import write_keyfile


def _second_key(args, prefix: str) -> KeySource:
    """Key for a rekey target or an export bundle: a key file or an environment variable name."""
    kf = getattr(args, f"{prefix}_key_file")
    env = getattr(args, f"{prefix}_passphrase_env")
    if kf:
        return KeySource.from_keyfile(kf)
    if env:
        if not os.environ.get(env):
            raise KeyFileError(f"environment variable {env} is empty or unset")
        return KeySource.from_passphrase(os.environ[env])
    raise KeyFileError(f"give --{prefix.replace('_', '-')}-key-file or --{prefix.replace('_', '-')}-passphrase-env")


def cmd_gallery(args) -> int:
    op = args.gallery_cmd
    if op == "keygen":
        path = write_keyfile(args.out)
        print(f"wrote a new 256-bit key to {path} (mode 600). Keep a backup: without it the gallery is lost.")
        return 0
    store = GalleryStore(args.gallery, gallery_key(args))
    if op == "ls":
        g = store.load()
        print(f"{len(g.people)} people, {len(g.templates)} templates, model {g.binding.name} "
              f"({g.binding.dim}-D, {g.template_dtype})")
        now = dt.datetime.now()
        for pid in g.person_order:
            p = g.people[pid]
            valid = "" if p.valid_at(now) else "  [not valid now]"
            window = f" {p.valid_from or '…'} → {p.valid_until or '…'}" if (p.valid_from or p.valid_until) else ""
            print(f"  {p.id}  {p.name:<28} {p.external_id or '-':<12} templates={g.template_count(pid):<3}"
                  f" groups={','.join(p.groups) or '-'}{window}{valid}")
    elif op == "rm":
        with store.transaction() as g:
            person = g.remove(args.name)
        print(f"removed {person.name} ({person.id})")
    elif op == "rename":
        with store.transaction() as g:
            person = g.rename(args.name, args.new_name)
        print(f"renamed {person.id} to {person.name}")
    elif op == "rekey":
        store.rekey(_second_key(args, "new"))
        print(f"re-encrypted {args.gallery} under the new key")
    elif op == "export":
        out = store.export_to(args.out, _second_key(args, "bundle"))
        print(f"exported to {out} (encrypted with the bundle key)")
    elif op == "import":
        names = store.import_from(args.bundle, _second_key(args, "bundle"))
        print(f"imported {len(names)} people: {', '.join(names)}")
    elif op == "check":
        info = store.check()
        print("gallery OK: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    elif op == "reembed":
        from facegate.apps.enroll import binding_of
        from facegate.edge.registry import load_embedder
        embedder = load_embedder(args.embedder)
        with store.transaction() as g:
            if not g.keep_crops or any(c is None for c in g.crops):
                raise GalleryError("this gallery keeps no face crops: re-enroll everyone with the new model instead")
            crops = np.stack([cv2.cvtColor(cv2.imdecode(np.frombuffer(c, np.uint8), cv2.IMREAD_COLOR),
                                           cv2.COLOR_BGR2RGB) for c in g.crops])
            if crops.shape[1] != embedder.input_size:
                crops = np.stack([cv2.resize(c, (embedder.input_size,) * 2) for c in crops])
            g.replace_templates(embedder.embed(crops), binding_of(embedder))
        print(f"re-embedded {len(crops)} templates with {embedder.name}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("gallery", help="manage an encrypted gallery")
    gs = g.add_subparsers(dest="gallery_cmd", required=True)
    kg = gs.add_parser("keygen", help="create a random key file (mode 600)")
    kg.add_argument("--out", type=Path, required=True)
    for name, helptext in (("ls", "list people"), ("check", "verify integrity (decrypt and cross-check)")):
        add_gallery_args(gs.add_parser(name, help=helptext))
    rm = gs.add_parser("rm", help="remove a person and their templates")
    add_gallery_args(rm)
    rm.add_argument("--name", required=True)
    rn = gs.add_parser("rename", help="change a person's display name")
    add_gallery_args(rn)
    rn.add_argument("--name", required=True)
    rn.add_argument("--new-name", required=True)
    rk = gs.add_parser("rekey", help="re-encrypt under a new key or passphrase")
    add_gallery_args(rk)
    rk.add_argument("--new-key-file", type=Path)
    rk.add_argument("--new-passphrase-env", metavar="VAR", help="environment variable holding the new passphrase")
    ex = gs.add_parser("export", help="write an encrypted bundle under a separate key")
    add_gallery_args(ex)
    ex.add_argument("--out", type=Path, required=True)
    im = gs.add_parser("import", help="merge the people of an encrypted bundle")
    add_gallery_args(im)
    im.add_argument("--bundle", type=Path, required=True)
    for p in (ex, im):
        p.add_argument("--bundle-key-file", type=Path)
        p.add_argument("--bundle-passphrase-env", metavar="VAR")
    re_ = gs.add_parser("reembed", help="recompute every template with a new model from the kept crops")
    add_gallery_args(re_)
    re_.add_argument("--embedder", required=True, help="new embedding model file with card")
    g.set_defaults(func=cmd_gallery)
