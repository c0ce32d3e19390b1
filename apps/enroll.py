"""`facegate enroll`: add a person (or more templates of them) to an encrypted gallery from photos."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from facegate.apps.common import add_gallery_args, add_pipeline_args, gallery_key, pipeline_from_args
from facegate.edge.errors import ImageError, NoFaceError, PersonNotFoundError, PresentationAttackError, UsageError
from facegate.edge.face.capture import best_camera_frames, encode_crop
from facegate.edge.gallery import GalleryStore, ModelBinding
from facegate.edge.images import load_rgb

log = logging.getLogger(__name__)


def cmd_enroll(args) -> int:
    if args.camera and args.images:
        raise UsageError("give either photos or --camera, not both")
    check = not args.no_liveness if args.camera else args.liveness
    if not check:
        log.warning("liveness check off for this enrolment")
    pipe = pipeline_from_args(args, liveness=check)
    if args.camera:
        from facegate.edge.door.camera import CameraConfig, open_source
        source = open_source(CameraConfig(args.source, args.device, fps=15.0))
        try:
            print(f"enrolling {args.name}: look at the camera")
            vectors, raw_crops = best_camera_frames(pipe, source.frames(), args.keep, args.max_frames, say=print)
        finally:
            source.close()
        if not vectors:
            raise NoFaceError(f"no camera frame of {args.name} passed the quality gates; nothing enrolled")
        return _store(args, pipe, vectors, [encode_crop(c) for c in raw_crops], skipped=0)
    if not args.images:
        raise UsageError("no photos given (or use --camera)")
    vectors, crops, skipped = [], [], []
    for path in args.images:
        try:
            image = load_rgb(path)
            emb = pipe.embed(image, require_quality=not args.no_quality, check_liveness=check)
            if emb.liveness is not None and not emb.liveness.live:
                raise PresentationAttackError(f"a photo or screen, not a person: {emb.liveness.reason}")
        except (ImageError, NoFaceError, PresentationAttackError) as exc:   # one bad photo must not cost the good ones
            print(f"skipped {path}: {exc}")
            skipped.append((path, exc))
            continue
        vectors.append(emb.vector)
        crops.append(encode_crop(pipe.crop(image, emb.face)))
    first = f"first: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
    if skipped and args.strict:
        raise type(skipped[0][1])(f"--strict: {len(skipped)} of {len(args.images)} photos unusable ({first}); "
                                  "nothing enrolled")
    if not vectors:
        if all(isinstance(e, PresentationAttackError) for _, e in skipped):
            raise PresentationAttackError(f"every photo looks like a photo of a photo or of a screen ({first}); "
                                          "nothing enrolled")
        unreadable = all(isinstance(e, ImageError) for _, e in skipped)
        raise (ImageError if unreadable else NoFaceError)(
            f"none of the {len(args.images)} photos gave a usable face ({first}); nothing enrolled")
    return _store(args, pipe, vectors, crops, skipped=len(skipped))


def _store(args, pipe, vectors, crops, skipped: int) -> int:
    store = GalleryStore(args.gallery, gallery_key(args, confirm=not args.gallery.exists()))
    binding = ModelBinding.for_embedder(pipe.embedder)
    with store.open_or_create(binding, args.template_dtype, args.keep_crops) as (gallery, new_gallery):
        try:
            person = gallery.find(args.name)
            created = False
        except PersonNotFoundError:
            person = gallery.add_person(args.name, args.external_id, args.valid_from, args.valid_until, args.group)
            created = True
        gallery.add_templates(person.id, vectors, crops if gallery.keep_crops else None)
        total = gallery.template_count(person.id)
    if new_gallery:
        print(f"created gallery {args.gallery} ({binding.name}, {gallery.template_dtype}"
              f"{', keeps encrypted face crops' if gallery.keep_crops else ''})")
    print(f"{'enrolled' if created else 'updated'} {args.name} (id {person.id}): +{len(vectors)} templates, "
          f"{total} in all; {skipped} photos skipped")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enroll", help="enrol a person from photos into an encrypted gallery")
    add_gallery_args(p)
    p.add_argument("--name", required=True, help="display name (stored encrypted)")
    p.add_argument("images", nargs="*", type=Path)
    p.add_argument("--camera", action="store_true", help="enrollment station: take the best frames from a camera")
    p.add_argument("--source", default="v4l2", help="camera source: picamera2, v4l2, gstreamer, video, folder")
    p.add_argument("--device", default="0", help="camera device / pipeline / video file / frames folder")
    p.add_argument("--keep", type=int, default=5, help="--camera: best frames to keep as templates")
    p.add_argument("--max-frames", type=int, default=300, help="--camera: give up after this many frames")
    p.add_argument("--external-id", default=None, help="badge / employee number")
    p.add_argument("--valid-from", default=None, help="ISO date/time access starts")
    p.add_argument("--valid-until", default=None, help="ISO date/time access ends")
    p.add_argument("--group", action="append", default=[], help="door group (repeatable)")
    p.add_argument("--template-dtype", choices=["float32", "float16", "int8"], default="float32",
                   help="storage of templates when the gallery is created")
    p.add_argument("--keep-crops", action="store_true", help="keep encrypted face crops (allows re-embedding "
                   "with a new model later) when the gallery is created")
    p.add_argument("--no-quality", action="store_true", help="enrol even photos failing quality gates")
    p.add_argument("--no-liveness", action="store_true", help="--camera: skip the liveness check (on by default: "
                   "a camera enrolment refuses a photo or a screen held up to it)")
    p.add_argument("--liveness", action="store_true", help="photos: skip every photo the liveness check calls a "
                   "photo of a photo or of a screen (off by default: enrolment photos are often ID photos)")
    p.add_argument("--strict", action="store_true", help="enrol nothing unless every photo is usable (by default "
                   "unusable photos are skipped with their reason and the rest are enrolled)")
    add_pipeline_args(p)
    p.set_defaults(func=cmd_enroll)

