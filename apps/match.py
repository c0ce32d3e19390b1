"""`facegate verify` (1:1, claimed identity) and `facegate identify` (1:N) on one photo."""
from __future__ import annotations

import argparse
from pathlib import Path

from facegate.apps.common import (
    add_gallery_args,
    add_pipeline_args,
    emit,
    gallery_key,
    pipeline_from_args,
)
from facegate.edge.errors import EXIT_OK, EXIT_REJECT, EXIT_RETRY
from facegate.edge.gallery import Decision, GalleryStore, Matcher, ModelBinding
from facegate.edge.gallery.matching import gallery_thresholds
from facegate.edge.images import load_rgb

EXIT_BY_DECISION = {Decision.ACCEPT: EXIT_OK, Decision.RETRY: EXIT_RETRY, Decision.REJECT: EXIT_REJECT}


def _matcher(args, pipe) -> Matcher:
    gallery = GalleryStore(args.gallery, gallery_key(args)).load(expect=ModelBinding.for_embedder(pipe.embedder))
    accept, retry = gallery_thresholds(gallery, pipe.embedder.card.thresholds, args.far, args.retry_far)
    return Matcher(gallery, accept, retry)


def _decide(args, decide) -> int:
    """Embed the photo's subject, let `decide(matcher, vector)` match it, print and exit by decision."""
    pipe = pipeline_from_args(args, liveness=args.liveness)
    matcher = _matcher(args, pipe)
    image = load_rgb(args.image)
    emb = pipe.embed(image, require_quality=not args.no_quality, check_liveness=args.liveness)
    result = decide(matcher, emb.vector)
    if emb.liveness is not None and not emb.liveness.live and result.decision is not Decision.REJECT:
        from facegate.edge.face.liveness import refused_as_attack
        result = refused_as_attack(result, emb.liveness)
    extra = {"liveness": emb.liveness.to_dict()} if emb.liveness is not None else {}
    emit({"image": str(args.image), **result.to_dict(), **extra, "timings_ms": emb.timings_ms}, args.json)
    return EXIT_BY_DECISION[result.decision]


def cmd_verify(args) -> int:
    return _decide(args, lambda m, v: m.verify(v, args.name, door_group=args.door_group))


def cmd_identify(args) -> int:
    return _decide(args, lambda m, v: m.identify(v, top_k=args.top_k, door_group=args.door_group))


def register(sub: argparse._SubParsersAction) -> None:
    for name, helptext, func in (("verify", "is the person in IMAGE the claimed person? (1:1)", cmd_verify),
                                 ("identify", "who is the person in IMAGE? (1:N)", cmd_identify)):
        p = sub.add_parser(name, help=helptext, description=f"{helptext} Exit 0 accept, "
                           f"{EXIT_RETRY} retry, {EXIT_REJECT} reject.")
        add_gallery_args(p)
        if name == "verify":
            p.add_argument("--name", required=True, help="claimed person (name, external id or gallery id)")
        else:
            p.add_argument("--top-k", type=int, default=5)
        p.add_argument("image", type=Path)
        p.add_argument("--far", default="1e-3", help="accept threshold: the card's threshold at this FAR")
        p.add_argument("--retry-far", default="1e-2", help="retry band down to the threshold at this FAR")
        p.add_argument("--door-group", default=None, help="only people in this door group are accepted")
        p.add_argument("--no-quality", action="store_true", help="decide even on a face failing quality gates")
        p.add_argument("--liveness", action="store_true", help="also refuse a photo of a photo or of a screen "
                       "(presentation attack detection on the face)")
        p.add_argument("--json", action="store_true", help="one JSON object instead of key: value lines")
        add_pipeline_args(p)
        p.set_defaults(func=func)
