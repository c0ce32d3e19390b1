"""Regenerate the committed gRPC stubs from proto/verification.proto (workstation only; needs grpcio-tools).

    python -m facegate.edge.site.grpc_stubs [--out DIR]

The proto is compiled under the virtual path ``facegate/edge/site/`` so the generated service module
imports its messages as ``facegate.edge.site.verification_pb2`` (protoc's default would be a top-level
``verification_pb2``, which does not import from an installed package). tests/test_site_grpc.py
regenerates into a temporary folder and checks the committed files are identical.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
PROTO = HERE / "proto" / "verification.proto"
GENERATED = ("verification_pb2.py", "verification_pb2_grpc.py")


def generate(out: Path) -> list[Path]:
    """Compile the proto; the two generated files, written into `out`. protoc runs in its own interpreter:
    in a process that has loaded TensorFlow's protobuf, grpc_tools' compiler crashes (segfault)."""
    with tempfile.TemporaryDirectory() as tmp:
        virtual = "facegate/edge/site"
        done = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={virtual}={PROTO.parent}",
                               f"--python_out={tmp}", f"--grpc_python_out={tmp}", f"{virtual}/{PROTO.name}"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"protoc failed ({done.returncode}): {done.stderr.strip()}")
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name in GENERATED:
            target = out / name
            shutil.copyfile(Path(tmp) / virtual / name, target)
            written.append(target)
        return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    for path in generate(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
