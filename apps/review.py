"""`facegate cluster`: group the faces in a folder of captured frames (strangers at the door) so a
person can review them: one contact sheet per group, plus a JSON listing."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from facegate.apps.common import add_pipeline_args, pipeline_from_args
from facegate.edge.errors import NoFaceError
from facegate.edge.face.cluster import dbscan_cosine, kmeans_pp
from facegate.edge.images import list_images, load_rgb

THUMB = 96


def contact_sheet(crops: list[np.ndarray], title: str, columns: int = 8) -> np.ndarray:
    """A grid of face thumbnails with a title bar (BGR, ready for cv2.imwrite)."""
    rows = max(1, -(-len(crops) // columns))
    cols = min(columns, max(1, len(crops)))
    sheet = np.full((30 + rows * THUMB, cols * THUMB, 3), 255, np.uint8)
    cv2.putText(sheet, title, (6, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for i, crop in enumerate(crops):
        r, c = divmod(i, columns)
        thumb = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), (THUMB, THUMB), interpolation=cv2.INTER_AREA)
        sheet[30 + r * THUMB:30 + (r + 1) * THUMB, c * THUMB:(c + 1) * THUMB] = thumb
    return sheet


def cluster_folder(pipe, folder: Path, out: Path, method: str = "dbscan", eps: float = 0.5, k: int = 5,
                   min_samples: int = 2) -> dict:
    faces, crops, vectors = [], [], []
    for path in list_images(folder):
        image = load_rgb(path)
        results = pipe.faces(image)
        for r in results:
            faces.append({"image": str(path), "box": [round(float(v), 1) for v in r.face.box],
                          "quality_ok": r.quality.ok})
            crops.append(r.crop)
        if results:
            vectors.append(pipe.embed_faces(image, [r.face for r in results]))
    if not faces:
        raise NoFaceError(f"no faces found in the images under {folder}")
    x = np.concatenate(vectors)
    labels = dbscan_cosine(x, eps, min_samples) if method == "dbscan" else kmeans_pp(x, k)
    out.mkdir(parents=True, exist_ok=True)
    groups = {}
    for label in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == label)
        name = "unclustered" if label < 0 else f"cluster_{label:02d}"
        cv2.imwrite(str(out / f"{name}.png"), contact_sheet([crops[i] for i in idx], f"{name}: {len(idx)} faces"))
        groups[name] = [faces[i] for i in idx]
    result = {"method": method, "faces": len(faces), "clusters": sum(1 for g in groups if g != "unclustered"),
              "groups": groups}
    (out / "clusters.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def cmd_cluster(args) -> int:
    pipe = pipeline_from_args(args)
    r = cluster_folder(pipe, args.images, args.out, args.method, args.eps, args.k, args.min_samples)
    sizes = ", ".join(f"{name}: {len(v)}" for name, v in r["groups"].items())
    print(f"{r['faces']} faces -> {r['clusters']} clusters ({sizes}); contact sheets in {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="group faces in a folder of captured frames for review")
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("runs") / "cluster")
    p.add_argument("--method", choices=["dbscan", "kmeans"], default="dbscan")
    p.add_argument("--eps", type=float, default=0.5, help="DBSCAN: max cosine distance between neighbours")
    p.add_argument("--min-samples", type=int, default=2, help="DBSCAN: faces needed to form a group")
    p.add_argument("--k", type=int, default=5, help="k-means: number of groups")
    add_pipeline_args(p)
    p.set_defaults(func=cmd_cluster)
