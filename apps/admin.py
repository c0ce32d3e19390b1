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
from facegate.edge.gallery import GalleryStore, KeySource, ModelBinding
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


def _store(args) -> GalleryStore:
    return GalleryStore(args.gallery, gallery_key(args))


def cmd_keygen(args) -> int:
    path = write_keyfile(args.out)
    print(f"wrote a new 256-bit key to {path} (mode 600). Keep a backup: without it the gallery is lost.")
    return 0


def cmd_ls(args) -> int:
    g = _store(args).load()
    reduced = f", PCA-reduced to {g.projection.dims}" if g.projection is not None else ""
    print(f"{len(g.people)} people, {len(g.templates)} templates, model {g.binding.name} "
          f"({g.binding.dim}-D, {g.template_dtype}{reduced})")
    now = dt.datetime.now()
    for pid in g.person_order:
        p = g.people[pid]
        valid = "" if p.valid_at(now) else "  [not valid now]"
        window = f" {p.valid_from or '…'} → {p.valid_until or '…'}" if (p.valid_from or p.valid_until) else ""
        print(f"  {p.id}  {p.name:<28} {p.external_id or '-':<12} templates={g.template_count(pid):<3}"
              f" groups={','.join(p.groups) or '-'}{window}{valid}")
    return 0


def cmd_rm(args) -> int:
    with _store(args).transaction() as g:
        person = g.remove(args.name)
    print(f"removed {person.name} ({person.id})")
    return 0


def cmd_rename(args) -> int:
    with _store(args).transaction() as g:
        person = g.rename(args.name, args.new_name)
    print(f"renamed {person.id} to {person.name}")
    return 0


def cmd_rekey(args) -> int:
    _store(args).rekey(_second_key(args, "new"))
    print(f"re-encrypted {args.gallery} under the new key")
    return 0


def cmd_export(args) -> int:
    out = _store(args).export_to(args.out, _second_key(args, "bundle"))
    print(f"exported to {out} (encrypted with the bundle key)")
    return 0


def cmd_import(args) -> int:
    names = _store(args).import_from(args.bundle, _second_key(args, "bundle"))
    print(f"imported {len(names)} people: {', '.join(names)}")
    return 0


def cmd_check(args) -> int:
    info = _store(args).check()
    print("gallery OK: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    return 0


def cmd_reembed(args) -> int:
    from facegate.edge.registry import get_embedder
    embedder = get_embedder(args.embedder)
    with _store(args).transaction() as g:
        if not g.keep_crops or any(c is None for c in g.crops):
            raise GalleryError("this gallery keeps no face crops: re-enroll everyone with the new model instead")
        crops = np.stack([cv2.cvtColor(cv2.imdecode(np.frombuffer(c, np.uint8), cv2.IMREAD_COLOR),
                                       cv2.COLOR_BGR2RGB) for c in g.crops])
        if crops.shape[1] != embedder.input_size:
            crops = np.stack([cv2.resize(c, (embedder.input_size,) * 2) for c in crops])
        projection = None
        if args.pca:
            from facegate.edge.gallery.projection import Projection
            projection = Projection.load(args.pca)
        elif g.projection is not None:
            print("the old model's PCA projection is dropped (give --pca with one fitted on the new model)")
        g.replace_templates(embedder.embed(crops), ModelBinding.for_embedder(embedder), projection)
        if args.template_dtype:
            g.template_dtype = args.template_dtype
    print(f"re-embedded {len(crops)} templates with {embedder.name} (stored as {g.template_dtype})")
    return 0


def cmd_convert(args) -> int:
    """Store the templates in another precision and/or PCA-reduced (smaller file; int8 galleries rank with
    the integer product). Going up in precision, or back from PCA, gains nothing back: refused unless asked
    (precision) or impossible without the crops (PCA)."""
    from facegate.edge.gallery.fileformat import template_bytes
    from facegate.edge.gallery.projection import Projection
    if not args.template_dtype and not args.pca:
        raise GalleryError("give --template-dtype and/or --pca")
    order = {"int8": 0, "float16": 1, "float32": 2}
    projection = Projection.load(args.pca) if args.pca else None
    with _store(args).transaction() as g:
        old, old_dim = g.template_dtype, g.template_dim
        new = args.template_dtype or old
        if order[new] > order[old] and not args.allow_widening:
            raise GalleryError(f"the templates are stored as {old}: storing them as {new} "
                               "recovers no precision. Re-embed from kept crops (`facegate gallery reembed`) or "
                               "pass --allow-widening to convert anyway")
        if projection is not None:
            g.set_projection(projection)
        g.template_dtype = new
        n = len(g.templates)
        if (new, g.template_dim) == (old, old_dim):
            print(f"{args.gallery} already stores {old} templates of {old_dim} numbers; nothing changed")
            return 0
    print(f"{args.gallery}: {n} templates {old} x {old_dim} -> {new} x {g.template_dim} "
          f"({template_bytes(old, n, old_dim) / 1e6:.2f} MB -> {template_bytes(new, n, g.template_dim) / 1e6:.2f} MB "
          "of templates)" + ("; matched with the projection's own thresholds" if projection is not None else ""))
    return 0


def cmd_rebind(args) -> int:
    from facegate.edge.registry import get_embedder
    embedder = get_embedder(args.embedder)
    new = ModelBinding.for_embedder(embedder)
    old = _store(args).rebind(new)
    if old.card_sha256 == new.card_sha256:
        print(f"{args.gallery} already uses this card of {embedder.name}; nothing changed")
        return 0
    thresholds = ", ".join(f"FAR {k}: {v}" for k, v in embedder.card.thresholds.items())
    print(f"{args.gallery} now trusts the card of {embedder.name} (card {new.card_sha256[:12]}..., was "
          f"{old.card_sha256[:12] or 'unpinned'}); thresholds {thresholds}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("gallery", help="manage an encrypted gallery")
    gs = g.add_subparsers(dest="gallery_cmd", required=True)
    kg = gs.add_parser("keygen", help="create a random key file (mode 600)")
    kg.add_argument("--out", type=Path, required=True)
    kg.set_defaults(func=cmd_keygen)

    def gallery_parser(name: str, helptext: str, func) -> argparse.ArgumentParser:
        p = gs.add_parser(name, help=helptext)
        add_gallery_args(p)
        p.set_defaults(func=func)
        return p

    gallery_parser("ls", "list people", cmd_ls)
    gallery_parser("check", "verify integrity (decrypt and cross-check)", cmd_check)
    gallery_parser("rm", "remove a person and their templates", cmd_rm).add_argument("--name", required=True)
    rn = gallery_parser("rename", "change a person's display name", cmd_rename)
    rn.add_argument("--name", required=True)
    rn.add_argument("--new-name", required=True)
    rk = gallery_parser("rekey", "re-encrypt under a new key or passphrase", cmd_rekey)
    rk.add_argument("--new-key-file", type=Path)
    rk.add_argument("--new-passphrase-env", metavar="VAR", help="environment variable holding the new passphrase")
    ex = gallery_parser("export", "write an encrypted bundle under a separate key", cmd_export)
    ex.add_argument("--out", type=Path, required=True)
    im = gallery_parser("import", "merge the people of an encrypted bundle", cmd_import)
    im.add_argument("--bundle", type=Path, required=True)
    for p in (ex, im):
        p.add_argument("--bundle-key-file", type=Path)
        p.add_argument("--bundle-passphrase-env", metavar="VAR")
    rb = gallery_parser("rebind", "trust the embedding model's current card (after a deliberate recalibration)",
                        cmd_rebind)
    rb.add_argument("--embedder", default=None, help="model file with card (default: the runtime default)")
    re_ = gallery_parser("reembed", "recompute every template with a new model from the kept crops", cmd_reembed)
    re_.add_argument("--embedder", required=True, help="new embedding model file with card")
    re_.add_argument("--template-dtype", choices=["float32", "float16", "int8"], default=None,
                     help="store the new templates in this precision (default: as before)")
    re_.add_argument("--pca", type=Path, default=None, help="PCA projection fitted on the new model")
    cv = gallery_parser("convert", "store the templates as float32, float16 or int8 (per-template scale), and/or "
                        "PCA-reduced", cmd_convert)
    cv.add_argument("--template-dtype", choices=["float32", "float16", "int8"], default=None)
    cv.add_argument("--pca", type=Path, default=None, help="PCA projection beside the embedder (<model>.pca<N>.npz, "
                    "from `facegate calibrate pca`)")
    cv.add_argument("--allow-widening", action="store_true", help="convert to a wider type anyway (no precision is "
                    "recovered)")
