"""The benchmark commands run and report sane numbers (timings themselves are not asserted)."""
import json

import pytest

from facegate.apps.cli import main


def test_bench_gallery_small(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["bench", "gallery", "--sizes", "200", "5000", "--out", str(out), "--no-progress"]) == 0
    r = json.loads(out.read_text())
    for dtype in ("float32", "float16", "int8"):
        assert set(r["identify_ms"][dtype]) == {"200", "5000"} and all(v > 0 for v in r["identify_ms"][dtype].values())
    # the int8 file is the smallest: codes and a scale per template instead of four bytes a number
    files = r["file_mb_10k_people"]
    assert files["float32"] > 5 and files["int8"] < files["float16"] < files["float32"]
    assert r["template_mb"]["int8"]["5000"] == round(5000 * (128 + 4) / 1e6, 2)
    assert r["enroll_per_s_1k_people"] > 0
    printed = capsys.readouterr().out
    assert "| 5,000 | int8 |" in printed and "| 200 | float16 |" in printed


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
    assert "| mtcnn-student | tflite | litert | 1 |" in capsys.readouterr().out


def test_bench_embedder_and_detector_put_backends_side_by_side(tmp_path, capsys):
    """auto (each file's default) beside ORT with OpenVINO asked for: a runtime is only tried on the files
    it runs, and each row names the runtime that actually ran (CPU where this build has no OpenVINO)."""
    import onnxruntime as ort
    student = "edge/models/facenet-student/facenet-student"
    out = tmp_path / "e.json"
    assert main(["bench", "embedder", "--embedder", f"{student}_fp16.tflite", "--embedder", f"{student}_fp32.onnx",
                 "--backend", "auto", "onnxruntime-openvino", "--threads", "1", "--repeats", "2",
                 "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["embedders"]
    openvino = "onnxruntime-openvino" if "OpenVINOExecutionProvider" in ort.get_available_providers() else "onnxruntime"
    assert [(r["embedder"], r["backend"]) for r in rows] == [
        ("facenet-student_fp16.tflite", "litert"), ("facenet-student_fp32.onnx", "onnxruntime"),
        ("facenet-student_fp32.onnx", openvino)]
    out = tmp_path / "d.json"
    assert main(["bench", "detector", "--detector", "mtcnn-student", "--format", "onnx", "--backend",
                 "onnxruntime", "onnxruntime-openvino", "--threads", "1", "--repeats", "2", "--out", str(out)]) == 0
    assert [r["backend"] for r in json.loads(out.read_text())["detectors"]] == ["onnxruntime", openvino]


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
        assert row["liveness"] == "minifasnet-fp16" and row["liveness_ms"] > 0     # its own line, on by default
    printed = capsys.readouterr().out
    assert "min_face_size 40" in printed and "| 2 |" in printed and "default" not in printed
    assert "liveness (minifasnet-fp16)" in printed
    assert main(["bench", "pipeline", "--detector-format", "tflite", "--threads", "1", "--repeats", "2",
                 "--liveness", "none", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["pipeline"][0]["liveness_ms"] is None


def test_peer_frames_are_reproducible_door_frames(lfw_dir, wider_dir):
    import numpy as np

    from facegate.edge.bench.peers import FACE_PX, peer_frames
    a = peer_frames(lfw_dir / "images", wider_dir / "images", count=4, seed=3)
    b = peer_frames(lfw_dir / "images", wider_dir / "images", count=4, seed=3)
    c = peer_frames(lfw_dir / "images", wider_dir / "images", count=4, seed=4)
    assert all(np.array_equal(x["frame"], y["frame"]) for x, y in zip(a, b))
    assert not all(np.array_equal(x["frame"], y["frame"]) for x, y in zip(a, c))
    for item in a:
        x0, y0, x1, y1 = item["face_box"]
        assert item["frame"].shape == (480, 640, 3) and FACE_PX[0] <= x1 - x0 <= FACE_PX[1] and x1 <= 640 and y1 <= 480


def test_bench_peers_against_face_recognition(tmp_path, lfw_dir, wider_dir, capsys):
    pytest.importorskip("face_recognition", reason="the optional peer: pip install -e '.[peers]' && "
                        "pip install --no-deps face_recognition==1.3.0")
    out = tmp_path / "peers"
    assert main(["bench", "peers", "--frames", "3", "--passes", "1", "--out", str(out)]) == 0
    r = json.loads((out / "peers.json").read_text())
    peer = next(v for k, v in r["systems"].items() if k.startswith("face_recognition"))
    ours = r["systems"]["facegate door defaults (large faces first)"]
    assert r["frames"] == 3 and ours["frames_with_a_face"] >= 2 and peer["median_ms"] > 0
    assert ours["peer_time_ratio"] == pytest.approx(peer["median_ms"] / ours["median_ms"], rel=0.05)
    assert "face_recognition" in (out / "peers.md").read_text() and "| facegate full search" in capsys.readouterr().out


def test_bench_peers_without_the_peer_is_a_clear_error(monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "face_recognition", None)
    assert main(["bench", "peers", "--frames", "1"]) == 4
    assert "pip install --no-deps face_recognition" in capsys.readouterr().err


def test_bench_soak_runs_a_real_door_and_judges_flatness(tmp_path, capsys):
    """A 20-second soak (the 1 h run is in docs/benchmarks.md): a real door process, sampled from /proc,
    stopped with SIGTERM (exit 130), its audit chain verified, a plot drawn."""
    out = tmp_path / "soak.json"
    code = main(["bench", "soak", "--minutes", "0.35", "--sample-every", "2", "--workdir", str(tmp_path / "w"),
                 "--plot", str(tmp_path / "soak.png"), "--out", str(out)])
    result = json.loads(out.read_text())
    s = result["summary"]
    assert s["exit_code"] == 130 and s["http_errors"] == 0 and s["audit_entries"] >= 3
    assert s["frames"] > 100 and len(result["samples"]) >= 8
    assert all(x["rss_mb"] > 50 and x["fds"] > 3 for x in result["samples"])
    assert code == (0 if s["flat"] else 16)
    assert (tmp_path / "soak.png").read_bytes()[:4] == b"\x89PNG"
    assert "door soak" in capsys.readouterr().out


def test_soak_verdict_catches_a_leak():
    from facegate.edge.bench.soak import summarise
    audit = {"entries": 10, "last_seq": 10, "files": ["audit.jsonl"]}
    steady = [{"t_s": t, "rss_mb": 180.0, "hwm_mb": 181.0, "fds": 40, "threads": 5, "frames": t * 30}
              for t in range(0, 600, 10)]
    assert summarise(steady, 10, 60, 130, "", audit, 0)["summary"]["flat"]
    leaking_fds = [dict(s, fds=40 + i // 5) for i, s in enumerate(steady)]
    assert not summarise(leaking_fds, 10, 60, 130, "", audit, 0)["summary"]["flat"]
    growing = [dict(s, rss_mb=180.0 + i) for i, s in enumerate(steady)]
    assert not summarise(growing, 10, 60, 130, "", audit, 0)["summary"]["flat"]
    assert not summarise(steady, 10, 60, 0, "crashed", audit, 0)["summary"]["flat"]


def test_bench_liveness_times_each_committed_set(tmp_path, capsys):
    out = tmp_path / "liveness.json"
    assert main(["bench", "liveness", "--threads", "1", "--repeats", "3", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["liveness"]
    assert [r["set"] for r in rows] == ["minifasnet-fp16", "minifasnet-int8", "minifasnet-fp32"]
    assert all(r["check_ms"] > 0 and 0 <= r["score"] <= 1 for r in rows)
    assert "| minifasnet-fp16 | 1 |" in capsys.readouterr().out


def test_bench_site_answers_every_probe_with_its_own_person(tmp_path, capsys):
    """A tiny `bench site`: the real server process, keep-alive clients, every identify answer checked."""
    pytest.importorskip("fastapi", reason="the site server needs the `site` extra")
    from facegate.apps.bench import SITE_PHOTO
    from facegate.convert.datasets import shared_datasets
    if not (shared_datasets() / SITE_PHOTO).exists():
        pytest.skip("pad_dev not available")
    out = tmp_path / "site.json"
    assert main(["bench", "site", "--sizes", "300", "--seconds", "1", "--clients", "4", "--image-seconds", "1",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    row = result["rows"][0]
    assert row["templates"] == 300 and row["embedding"]["requests"] > 20
    assert row["embedding"]["errors"] == {} and row["embedding"]["wrong_person"] == 0
    assert row["image"]["requests"] >= 1 and row["image"]["errors"] == {}
    assert result["command"].startswith("facegate bench site")
    assert "| 300 |" in out.with_suffix(".md").read_text() and "| 300 |" in capsys.readouterr().out


def test_bench_fleet_counts_every_event_once(tmp_path, capsys):
    """A tiny `bench fleet`: the real site server with its mosquitto, simulated doors; nothing lost or doubled."""
    pytest.importorskip("aiomqtt", reason="bench fleet needs aiomqtt (the `site` extra)")
    from facegate.edge.fleet.broker import mosquitto_binary
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    assert main(["bench", "fleet", "--doors", "6", "--enrolments", "2", "--seconds", "1", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "fleet.json").read_text())
    assert result["lost"] == 0 and result["duplicates"] == 0 and result["alarms"] == 0
    assert result["events_stored"] == result["events_sent"] > 0
    assert len(result["propagation"]) == 2 and all(p["last_s"] < 30 for p in result["propagation"])
    assert "simulated doors" in (tmp_path / "fleet.md").read_text()
