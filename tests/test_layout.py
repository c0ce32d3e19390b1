"""The project's shape, checked: honest layers, one CLI shape, one exit-code table, a public API in
two imports, and a README that describes the tree that exists."""
from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: folder -> the facegate packages its code may import
ALLOWED = {
    "edge": {"edge"},
    "convert": {"edge", "convert"},
    "calibration": {"edge", "convert", "calibration"},
    "hardware": {"edge", "hardware"},
    "apps": {"edge", "convert", "calibration", "hardware", "apps"},
}


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every `import facegate...` / `from facegate... import`."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("facegate"):
            out.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.startswith("facegate")]
    return out


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_packages_import_only_their_layers(folder):
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, module, _ in _imports(path):
            package = module.split(".")[1] if "." in module else ""
            if package not in ALLOWED[folder]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_library_code_imports_no_private_names_across_modules():
    bad = []
    for folder in ALLOWED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, module, names in _imports(path):
                bad += [f"{path.relative_to(ROOT)}:{line} {module}.{n}" for n in names if n.startswith("_")]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_public_api_is_two_imports_and_importing_errors_stays_light():
    script = """
import sys
import facegate.edge.errors
assert 'cv2' not in sys.modules and 'numpy' not in sys.modules, 'facegate.edge.errors pulled in the runtime'
from facegate.edge import Pipeline, load_rgb
from facegate.edge import GalleryStore, KeySource, Matcher, thresholds_from_card
from facegate.edge.face.pipeline import Pipeline as P
assert Pipeline is P and callable(load_rgb) and callable(thresholds_from_card)
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_export_list_answers_without_tensorflow():
    script = """
import sys
from facegate.apps.cli import main
assert main(['export', '--list']) == 0
assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tflite" in out.stdout and "coreml" in out.stdout


def _leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaf_parsers(child, (*path, name))


def test_every_subcommand_dispatches_through_set_defaults():
    from facegate.apps.cli import build_parser
    leaves = list(_leaf_parsers(build_parser()))
    assert len(leaves) >= 40
    missing = [" ".join(p) for p, parser in leaves if not callable(parser.get_default("func"))]
    assert not missing, f"subcommands without a func: {missing}"


def test_readme_exit_code_table_is_the_errors_table():
    from facegate.edge.errors import EXIT_CODES
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", section, flags=re.M))
    assert {int(k): v for k, v in rows.items()} == EXIT_CODES


def test_every_exit_code_an_error_carries_is_documented():
    import facegate.edge.errors as errors
    codes = {cls.exit_code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.FacegateError)}
    assert codes <= set(errors.EXIT_CODES)


def test_readme_layout_names_every_package_folder():
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    for init in sorted(ROOT.glob("*/**/__init__.py")):
        folder = init.parent.relative_to(ROOT)
        if folder.parts[0] in ALLOWED and len(folder.parts) > 1:
            assert f"{folder.parts[-1]}/" in layout, f"README layout does not mention {folder}/"
    for name in re.findall(r"^([a-z]+)/ ", layout, flags=re.M):
        assert (ROOT / name).is_dir(), f"README layout names {name}/, which does not exist"


def test_readme_command_block_names_every_subcommand():
    from facegate.apps.cli import build_parser
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Command line", 1)[1].split("```", 2)[1]
    missing = []
    for path, _ in _leaf_parsers(build_parser()):
        group, rest = path[0], path[1:]
        lines = [line for line in block.splitlines() if re.match(rf"facegate {re.escape(group)}\b", line)]
        if not lines or (rest and not any(re.search(rf"(\s|\|){re.escape(rest[0])}(\s|\||$)", line) for line in lines)):
            missing.append(" ".join(path))
    assert not missing, f"README's command block lacks: {missing}"


def test_commands_are_quiet_by_default_and_verbose_on_request(lfw_images):
    """LiteRT announces its XNNPACK delegate from C++ on every command; facegate keeps it (and other
    native start-up chatter) off the terminal unless -v is given."""
    image = str(next(iter(lfw_images.values()))[0])
    cmd = [sys.executable, "-m", "facegate.apps.cli"]
    quiet = subprocess.run([*cmd, "detect", image], capture_output=True, text=True)
    assert quiet.returncode == 0 and '"faces": [{' in quiet.stdout
    assert quiet.stderr == "", quiet.stderr
    loud = subprocess.run([*cmd, "-v", "detect", image], capture_output=True, text=True)
    assert loud.returncode == 0 and "XNNPACK" in loud.stderr
