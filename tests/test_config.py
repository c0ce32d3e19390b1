"""The one configuration loader: every key of every `door.toml` section, generated from the schema, is
tried with a value of the wrong type and under a misspelt name; both must be refused naming the key,
before anything is opened. What a board bundle writes must load back unchanged."""
from __future__ import annotations

import dataclasses
import math
import typing

import pytest

from facegate.edge.config import dump_toml, load_section
from facegate.edge.door.config import DoorConfig, door_config_from_dict, load_door_config
from facegate.edge.errors import ConfigError


def _keys(cls, prefix: tuple[str, ...] = ()):
    """(path, type) of every leaf key of a schema dataclass, nested sections included."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _keys(tp, (*prefix, f.name))
        else:
            yield (*prefix, f.name), tp


def _wrong_value(tp):
    """A TOML value the type must refuse."""
    options = set(typing.get_args(tp)) - {type(None)} or {tp}
    if str in options:
        return 12                      # a number where text is expected
    if bool in options:
        return "no"                    # a string that looks like a boolean
    if typing.get_origin(tp) is tuple:
        return ["a", "b"]
    return "big"                       # text where a number is expected


def _nested(path: tuple[str, ...], value) -> dict:
    doc: dict = {}
    node = doc
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return doc


KEYS = list(_keys(DoorConfig))


def _ranged(cls, prefix: tuple[str, ...] = ()):
    """(path, (low, high), type) of every key with an allowed range, nested sections included."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _ranged(hints[f.name], (*prefix, f.name))
        elif "range" in f.metadata:
            yield (*prefix, f.name), f.metadata["range"], hints[f.name]


RANGED = list(_ranged(DoorConfig))


def test_the_schema_covers_every_section():
    sections = {path[0] for path, _ in KEYS}
    assert sections == {"door", "camera", "relay", "gallery", "audit", "http", "display", "pipeline", "liveness", "fleet"}
    assert len(KEYS) >= 50 and len(RANGED) >= 25


@pytest.mark.parametrize("path,tp", KEYS, ids=[".".join(p) for p, _ in KEYS])
def test_every_key_refuses_a_wrong_type_and_a_misspelling(path, tp):
    with pytest.raises(ConfigError, match=path[-1]):
        door_config_from_dict(_nested(path, _wrong_value(tp)))
    with pytest.raises(ConfigError, match=path[-1] + "x"):
        door_config_from_dict(_nested((*path[:-1], path[-1] + "x"), 1))


@pytest.mark.parametrize("path,bounds,tp", RANGED, ids=[".".join(p) for p, _, _ in RANGED])
def test_every_ranged_key_refuses_values_outside_its_range(path, bounds, tp):
    low, high = bounds
    whole = int in (set(typing.get_args(tp)) | {tp})
    for value in (low - 1, high * 10 + 1):
        value = int(value) if whole else float(value)
        with pytest.raises(ConfigError, match=rf"{path[-1]} must be between"):
            door_config_from_dict(_nested(path, value))
    try:                                       # the edge itself passes the range check
        door_config_from_dict(_nested(path, int(high) if whole else float(high)))
    except ConfigError as exc:                 # (a section's own cross-check may still object: k <= n)
        assert "must be between" not in str(exc), exc


def test_the_hardening_findings_are_refused():
    """The values a door once started with: an unlock that never ends, a port that cannot be bound."""
    for doc in ({"door": {"pulse_seconds": -5}}, {"door": {"pulse_seconds": 1e12}}, {"http": {"port": 99999}},
                {"door": {"detect_every": 0}}, {"audit": {"max_bytes": 0}}, {"camera": {"fps": 0}}):
        with pytest.raises(ConfigError, match="must be between"):
            door_config_from_dict(doc)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_numbers_must_be_finite(value):
    with pytest.raises(ConfigError, match="pulse_seconds must be a finite number"):
        door_config_from_dict({"door": {"pulse_seconds": value}})


def test_ranges_checked_by_the_sections_themselves():
    with pytest.raises(ConfigError, match=r"\[door.policy\].*1 <= k <= n"):
        door_config_from_dict({"door": {"policy": {"k": 6, "n": 5}}})
    with pytest.raises(ConfigError, match=r"\[display\].*headless"):
        door_config_from_dict({"display": {"mode": "fullscreen"}})
    with pytest.raises(ConfigError, match="section"):
        door_config_from_dict({"camrea": {}})


def test_valid_values_load_with_their_types():
    cfg = door_config_from_dict({"camera": {"fps": 15, "device": "/dev/video2"},
                                 "pipeline": {"max_faces": 1, "quality": {"pitch_range": [0.2, 0.9]}},
                                 "door": {"policy": {"k": 2, "n": 3}}})
    assert cfg.camera.fps == 15.0 and isinstance(cfg.camera.fps, float)
    assert cfg.pipeline.quality.pitch_range == (0.2, 0.9) and cfg.door.policy.k == 2


def test_dump_toml_round_trips_through_the_loader(tmp_path):
    doc = {"door": {"mode": "claim", "pulse_seconds": 2.5, "policy": {"k": 2, "n": 4}},
           "http": {"enabled": False, "port": 8081}, "pipeline": {"quality": {"brightness_range": [30.0, 230.0]}}}
    path = tmp_path / "door.toml"
    path.write_text(dump_toml(doc, header="test"))
    cfg = load_door_config(path)
    assert cfg.door.mode == "claim" and cfg.door.pulse_seconds == 2.5 and cfg.door.policy.n == 4
    assert cfg.http.enabled is False and cfg.http.port == 8081
    assert cfg.pipeline.quality.brightness_range == (30.0, 230.0)


def test_bundle_door_toml_is_checked_against_the_schema():
    from facegate.edge.errors import BundleError
    from facegate.hardware.bundle import door_toml
    from facegate.hardware.profiles import list_profiles, load_profile
    for name in list_profiles():
        text = door_toml(load_profile(name), "facenet-student/facenet-student_fp16.tflite")
        import tomllib
        cfg = door_config_from_dict(tomllib.loads(text))
        assert cfg.pipeline.embedder.endswith("facenet-student_fp16.tflite")
    broken = dataclasses.replace(load_profile("rpi4"), door={"camera": {"fps": "fast"}})
    with pytest.raises(BundleError, match="fps"):
        door_toml(broken, None)


def test_door_run_with_a_mistyped_key_exits_2_without_a_traceback(tmp_path, capsys):
    from facegate.apps.cli import main
    cfg = tmp_path / "door.toml"
    cfg.write_text('[door]\npulse_seconds = "2"\n')
    assert main(["door", "run", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "pulse_seconds must be a finite number" in err and "Traceback" not in err


def test_a_section_that_is_not_a_table_is_refused():
    with pytest.raises(ConfigError, match=r"\[relay\] must be a table"):
        load_section(DoorConfig, {"relay": "mock"})
