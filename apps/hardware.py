"""`facegate hardware profiles|bundle|selftest|emulate`: board profiles, offline install bundles, the
on-board self-test, and the same self-test on emulated aarch64."""
from __future__ import annotations

import argparse
from pathlib import Path

from facegate.edge.errors import EXIT_OK, EXIT_SELFTEST_FAILED


def cmd_profiles(args) -> int:
    from facegate.hardware.profiles import list_profiles, load_profile
    for name in list_profiles():
        p = load_profile(name)
        print(f"{name:<12} Python {p.python}  {p.description}")
    return EXIT_OK


def cmd_bundle(args) -> int:
    from facegate.hardware.bundle import build_bundle
    m = build_bundle(args.board, args.out, args.embedder)
    print(f"bundle for {m['board']} in {args.out}: {len(m['wheels'])} wheels, {len(m['models'])} model files, "
          f"{m['bytes'] / 1e6:.0f} MB. Install on the board with: sudo ./install.sh")
    return EXIT_OK


def cmd_selftest(args) -> int:
    from facegate.hardware.selftest import run_selftest
    report = run_selftest(args.bundle, args.embedder, args.detector_format, args.relay, args.relay_pin, args.threads,
                          args.backend)
    print(report.text())
    return EXIT_OK if report.passed else EXIT_SELFTEST_FAILED


def cmd_emulate(args) -> int:
    if args.system:
        from facegate.hardware.emulate import run_system_selftest
        r = run_system_selftest(args.board, args.bundle, args.timeout)
        for be, res in r["backends"].items():
            print(f"--- {be}\n{res['report'] or res['tail']}")
        print(f"{r['mode']}: {r['seconds']} s in all (emulation: timings prove function, not speed)")
        passed = bool(r["backends"]) and all(x["passed"] for x in r["backends"].values())
    else:
        from facegate.hardware.emulate import run_emulated_selftest
        r = run_emulated_selftest(args.board, args.bundle, args.timeout)
        print(r["report"] or r["stderr_tail"])
        print(f"emulated aarch64 ({args.board}, tflite-runtime): prepared in {r['seconds_prepare']} s, "
              f"self-test {r['seconds_selftest']} s (emulation: timings prove function, not speed)")
        passed = r["passed"]
    return EXIT_OK if passed else EXIT_SELFTEST_FAILED


def _add_bundle(hws) -> None:
    bu = hws.add_parser("bundle", help="build an offline install bundle for a board")
    bu.add_argument("--board", required=True, help="rpi4 | rpi5 | jetson-orin | jetson-nano")
    bu.add_argument("--out", type=Path, required=True)
    bu.add_argument("--embedder", type=Path, default=None, help="embedder file with card (default: the installed default)")
    bu.set_defaults(func=cmd_bundle)


def _add_selftest(hws) -> None:
    st = hws.add_parser("selftest", help="check models, pipeline, gallery (and relay) on this machine")
    st.add_argument("--bundle", type=Path, default=None, help="bundle folder (its models and self-test photos)")
    st.add_argument("--embedder", type=Path, default=None)
    st.add_argument("--detector-format", choices=["tflite", "onnx"], default=None)
    st.add_argument("--relay", choices=["mock", "gpiozero", "jetson"], default=None, help="also toggle this relay")
    st.add_argument("--relay-pin", type=int, default=17)
    st.add_argument("--threads", type=int, default=None)
    st.add_argument("--backend", choices=["litert", "tflite-runtime", "onnxruntime"], default=None,
                    help="force one runtime for every model (e.g. tflite-runtime on legacy boards)")
    st.set_defaults(func=cmd_selftest)


def _add_emulate(hws) -> None:
    em = hws.add_parser("emulate", help="run the self-test on emulated aarch64 (qemu-user + debootstrap)")
    em.add_argument("--board", default="rpi4")
    em.add_argument("--bundle", type=Path, default=None, help="bundle to test (default: build one, cached)")
    em.add_argument("--timeout", type=int, default=2400)
    em.add_argument("--system", action="store_true", help="full-system qemu-system-aarch64 with the bundle's own "
                    "wheels (LiteRT, ONNX Runtime) instead of qemu-user with tflite-runtime")
    em.set_defaults(func=cmd_emulate)


def register(sub: argparse._SubParsersAction) -> None:
    hw = sub.add_parser("hardware", help="board profiles, flashing bundles, on-board self-test")
    hws = hw.add_subparsers(dest="hardware_cmd", required=True)
    hws.add_parser("profiles", help="list the board profiles").set_defaults(func=cmd_profiles)
    _add_bundle(hws)
    _add_selftest(hws)
    _add_emulate(hws)
