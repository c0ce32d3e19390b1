"""The benchmark commands run and report sane numbers (timings themselves are not asserted)."""
import json

import pytest

from facegate.apps.cli import main


def test_bench_gallery_small(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["bench", "gallery", "--sizes", "200", "2000", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r["identify_ms"]) == {"200", "2000"} and all(v > 0 for v in r["identify_ms"].values())
    assert r["file_mb_10k_people"] > 5 and r["enroll_per_s_1k_people"] > 0
    assert "| 2,000 |" in capsys.readouterr().out


def test_bench_detector_compares_sets_in_one_run(tmp_path, capsys):
    out = tmp_path / "d.json"
    assert main(["bench", "detector", "--detector", "mtcnn-teacher", "mtcnn-student", "--threads", "1",
                 "--repeats", "2", "--out", str(out), "--plot", str(tmp_path / "split.png")]) == 0
    rows = json.loads(out.read_text())["detectors"]
    assert [r["detector"] for r in rows] == ["mtcnn-teacher", "mtcnn-student"]
    assert (tmp_path / "split.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for r in rows:
        assert r["faces"] >= 1 and r["full_ms"] > 0 and r["roi_ms"] > 0 and r["fast_path_ms"] > 0
        # the nets' share is measured and is part of the frame, not all of it (the cascade's own work)
        assert 0 < r["full_nets_ms"] < r["full_ms"] and 0 < r["chained_nets_ms"] < r["chained_pyramid_ms"]
        assert all(r[f"chained_{n}_ms"] > 0 for n in ("pnet", "rnet", "onet"))
        assert r["chained_pnet_ms"] + r["chained_rnet_ms"] + r["chained_onet_ms"] == \
            pytest.approx(r["chained_nets_ms"], rel=0.3)
    assert "| mtcnn-student | tflite | 1 |" in capsys.readouterr().out


def test_bench_embedder_lists_each_file_and_thread_count(tmp_path):
    from facegate.edge.registry import default_embedder_path
    out = tmp_path / "e.json"
    path = str(default_embedder_path())
    assert main(["bench", "embedder", "--embedder", path, "--threads", "1", "2", "--repeats", "2",
                 "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["embedders"]
    assert [r["threads"] for r in rows] == [1, 2] and all(r["embed_ms"] > 0 for r in rows)


def test_bench_pipeline_states_its_settings_and_spread(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["bench", "pipeline", "--detector-format", "tflite", "--threads", "1", "2", "--repeats", "3",
                 "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert [row["threads"] for row in r["pipeline"]] == [1, 2]
    assert r["settings"]["min_face_size"] == 40 and r["settings"]["chained_pyramid"] is True
    for row in r["pipeline"]:
        assert row["faces"] == 1 and row["frame_p10_ms"] <= row["frame_ms"] <= row["frame_p90_ms"]
        assert row["detect_ms"] > 0 and row["embed_ms"] > 0
    printed = capsys.readouterr().out
    assert "min_face_size 40" in printed and "| 2 |" in printed and "default" not in printed
