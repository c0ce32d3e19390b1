"""`facegate detect IMAGE...`: every face (box, score, 5 landmarks) as one JSON line per image."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from facegate.apps.common import add_detector_args, detector_from_args


def cmd_detect(args) -> int:
    from facegate.edge.images import load_rgb
    det = detector_from_args(args)
    for image in args.images:
        faces = det.detect(load_rgb(image))
        print(json.dumps({"image": str(image), "faces": [f.to_dict() for f in faces]}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    det = sub.add_parser("detect", help="print detected faces (box, score, landmarks) as JSON lines")
    det.add_argument("images", nargs="+", type=Path)
    add_detector_args(det)
    det.set_defaults(func=cmd_detect)
