"""The fuzz harnesses (tests/fuzz): every committed seed and past crash replayed through its target, then,
where atheris installs, each target fuzzed for a short budget (FACEGATE_FUZZ_SECONDS, default 10 s;
docs/fuzzing.md runs them for hours)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).parent / "fuzz"
sys.path.insert(0, str(FUZZ))
import targets  # noqa: E402

SECONDS = int(os.environ.get("FACEGATE_FUZZ_SECONDS", "10"))


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_seed_corpus_replays_cleanly(name):
    seeds = sorted((targets.CORPUS / name).iterdir())
    assert len(seeds) >= 2, f"tests/fuzz/corpus/{name} needs seeds (python tests/fuzz/make_corpus.py)"
    for seed in seeds:
        targets.TARGETS[name](seed.read_bytes())


def test_the_gallery_seed_opens_and_the_audit_seed_verifies():
    """The seeds are real artifacts, so mutations start from valid inputs (deep coverage)."""
    from facegate.edge.door.audit import verify
    from facegate.edge.gallery import GalleryStore, KeySource
    folder = targets._WORK / "check"
    folder.mkdir(exist_ok=True)
    g = folder / "g.fgg"
    g.write_bytes((targets.CORPUS / "gallery" / "two-people.fgg").read_bytes())
    assert len(GalleryStore(g, KeySource("raw", targets.FUZZ_KEY)).load().people) == 2
    log_bytes, _, seal_bytes = (targets.CORPUS / "audit" / "log-and-seal").read_bytes().partition(targets.SEAL_MARK)
    (folder / "a.jsonl").write_bytes(log_bytes)
    (folder / "a.jsonl.seal").write_bytes(seal_bytes)
    assert verify(folder / "a.jsonl", key=targets.FUZZ_KEY)["entries"] == 5


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_fuzz_for_a_short_budget(name, tmp_path):
    pytest.importorskip("atheris", reason="atheris has no wheel for this platform; the corpus replay still ran")
    (tmp_path / "new").mkdir()
    # Through a shell that forks: Linux carries a process's peak RSS across exec, so a fuzzer exec'd
    # straight from this (gigabytes-large) pytest process would start "over" its 2 GB limit.
    fuzz = [sys.executable, str(FUZZ / "run.py"), name, f"-max_total_time={SECONDS}", "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/", str(tmp_path / "new"), str(targets.CORPUS / name)]
    proc = subprocess.run(
        ["sh", "-c", '"$@"; exit $?', "sh", *fuzz],
        capture_output=True, text=True, timeout=SECONDS + 120,
        env={**os.environ, "PYTHONHASHSEED": "0"}, cwd=tmp_path)
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    assert proc.returncode == 0, f"fuzz target {name} found a crash (artifact in {tmp_path}):\n{tail}"
    assert "DONE" in proc.stderr, tail
