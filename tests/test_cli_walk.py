"""Every subcommand, given a folder, a missing path or an unreadable file wherever it takes a path,
answers with one line and a documented exit code: never a traceback."""
import argparse
import contextlib
import io
import os
from pathlib import Path

import pytest

from facegate.apps.cli import build_parser, main
from facegate.edge.errors import EXIT_CODES

pytestmark = pytest.mark.slow
OUTPUTS = {"out", "plot", "workdir", "targets_cache"}
#: arguments that name a model, a folder or a file without type=Path
PATHLIKE = {"model", "embedder", "lfw_dir", "images", "mat_dir", "probe_model", "detector"}
#: covered by tests/test_emulation.py (boots a virtual machine); every other leaf is walked
SKIP = {("hardware", "emulate")}
#: commands whose path argument is the folder they create (an empty or missing folder is what they want;
#: tests/test_site.py covers them); only the unreadable case is walked
CREATES = {("site", "init")}


def _leaves(parser, prefix=()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
        return
    for name, sub in subs[0].choices.items():
        yield from _leaves(sub, prefix + (name,))


def _argv(path, parser, bad: str) -> list[str] | None:
    """The leaf's command line with `bad` in every path-taking argument (None: it takes no path)."""
    argv, used = list(path), False
    for action in parser._actions:
        if action.dest == "help":
            continue
        pathlike = (action.type is Path or action.dest in PATHLIKE) and action.type not in (int, float)
        if not (action.required or not action.option_strings or (pathlike and action.dest not in OUTPUTS)):
            continue
        if action.dest == "board":
            value = "rpi4"
        elif pathlike or action.dest in OUTPUTS:
            value, used = bad, True
        else:
            value = "x"
        argv += [action.option_strings[-1], value] if action.option_strings else [value]
    return argv if used else None


@pytest.fixture(scope="module")
def bad_paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("walk")
    (root / "a-folder").mkdir()
    unreadable = root / "unreadable"
    if os.geteuid() == 0:              # root reads any mode: a file whose read fails with EIO instead
        unreadable.symlink_to("/proc/self/mem")
    else:
        unreadable.write_text("secret")
        unreadable.chmod(0)
    return {"folder": root / "a-folder", "missing": root / "missing" / "nothing", "unreadable": unreadable}


CASES = [(path, kind) for path, _ in _leaves(build_parser()) if path not in SKIP
         for kind in ("folder", "missing", "unreadable")]


@pytest.mark.parametrize("path,kind", CASES, ids=[f"{' '.join(p)}-{k}" for p, k in CASES])
def test_no_traceback_for_a_bad_path(path, kind, bad_paths, monkeypatch, tmp_path):
    leaf = dict(_leaves(build_parser()))[path]
    argv = _argv(path, leaf, str(bad_paths[kind]))
    if argv is None:
        pytest.skip("takes no path")
    if path in CREATES and kind != "unreadable":
        pytest.skip("creates the folder it is given")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FACEGATE_GALLERY_PASSPHRASE", raising=False)
    monkeypatch.setenv("FACEGATE_GALLERY_KEY", "A" * 43 + "=")
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:      # argparse's own usage error
            code = exc.code
    assert code != 0 and code in EXIT_CODES, (argv, code, err.getvalue())
    assert "Traceback" not in err.getvalue() + out.getvalue()
    if code not in (2, 16):            # argparse / a self-test list their own findings
        assert err.getvalue().startswith("facegate: error: "), err.getvalue()


@pytest.mark.parametrize("kind,message", [("folder", "is a folder, not a gallery file"),
                                          ("missing", "gallery not found"), ("unreadable", "cannot be read")])
def test_gallery_paths_with_a_good_key(kind, message, bad_paths, monkeypatch, capsys, tmp_path):
    """The gallery argument itself (the walk above stops at the bad key file first)."""
    monkeypatch.setenv("FACEGATE_GALLERY_KEY", "A" * 43 + "=")
    path = tmp_path / "nowhere" / "g.fgg" if kind == "missing" else bad_paths[kind]   # the walk may create paths
    assert main(["gallery", "ls", "--gallery", str(path)]) == 7
    assert message in capsys.readouterr().err


def test_keygen_never_overwrites(tmp_path, capsys):
    existing = tmp_path / "gallery.key"
    existing.write_bytes(b"k" * 32)
    assert main(["gallery", "keygen", "--out", str(existing)]) == 7
    assert "never overwritten" in capsys.readouterr().err and existing.read_bytes() == b"k" * 32
