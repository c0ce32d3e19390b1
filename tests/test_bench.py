"""The benchmark commands run and report sane numbers (timings themselves are not asserted)."""
import json

from facegate.apps.cli import main


def test_bench_gallery_small(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["bench", "gallery", "--sizes", "200", "2000", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r["identify_ms"]) == {"200", "2000"} and all(v > 0 for v in r["identify_ms"].values())
    assert r["file_mb_10k_people"] > 5 and r["enroll_per_s_1k_people"] > 0
    assert "| 2,000 |" in capsys.readouterr().out
