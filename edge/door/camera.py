"""Frame sources for the door: Raspberry Pi camera (picamera2), V4L2/USB (OpenCV), a GStreamer
pipeline (Jetson CSI via nvarguscamerasrc), a video file, or a folder of frames (tests, replays).

All yield RGB uint8 frames. picamera2 exists only on Raspberry Pi OS (installed with apt; the venv
needs --system-site-packages), so it is imported only when asked for, with a message that says so.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from facegate.edge.config import within
from facegate.edge.errors import CameraError
from facegate.edge.images import list_images, load_rgb

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class CameraConfig:
    source: str = "folder"         # picamera2 | v4l2 | gstreamer | video | folder
    device: str = "0"              # v4l2 index or /dev/videoN; gstreamer pipeline; video/folder path
    width: int = within(640, 16, 8192)
    height: int = within(480, 16, 8192)
    fps: float = within(15.0, 0.1, 240)
    loop: bool = False             # video/folder: start again at the end (kiosk demos)


class FrameSource(Protocol):
    def frames(self) -> Iterator[np.ndarray]: ...

    def close(self) -> None: ...


class FolderSource:
    """Image files of a folder in name order, as if they came from a camera."""

    def __init__(self, folder: str | Path, loop: bool = False) -> None:
        self.paths = list_images(folder)
        if not self.paths:
            raise CameraError(f"no frames (images) found in {folder}")
        self.loop = loop

    def frames(self) -> Iterator[np.ndarray]:
        while True:
            for p in self.paths:
                yield load_rgb(p)
            if not self.loop:
                return

    def close(self) -> None:
        pass


class OpenCVSource:
    """cv2.VideoCapture: a V4L2/USB camera, a video file or a GStreamer pipeline string."""

    def __init__(self, target: str | int, width: int, height: int, fps: float, api: int = cv2.CAP_ANY,
                 loop: bool = False, what: str = "camera") -> None:
        self.cap = cv2.VideoCapture(target, api)
        if not self.cap.isOpened():
            hint = {"camera": "is it plugged in, and is the user in the 'video' group?",
                    "gstreamer": "does this OpenCV build have GStreamer (JetPack's does; pip wheels do not)?",
                    "video": "does the file exist and is its codec supported?"}[what]
            raise CameraError(f"cannot open {what} {target!r}: {hint}")
        if what == "camera":
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            self.cap.set(cv2.CAP_PROP_FPS, fps)
        self.loop = loop and what == "video"

    def frames(self) -> Iterator[np.ndarray]:
        while True:
            ok, bgr = self.cap.read()
            if not ok:
                if self.loop:
                    self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.cap.release()


class PiCameraSource:
    def __init__(self, width: int, height: int, fps: float) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise CameraError("picamera2 is not available: it exists only on Raspberry Pi OS. Install it with "
                              "`sudo apt install python3-picamera2` and create the venv with --system-site-packages; "
                              "elsewhere use source = 'v4l2'") from exc
        self.cam = Picamera2()
        cfg = self.cam.create_video_configuration(main={"size": (width, height), "format": "RGB888"},
                                                  controls={"FrameRate": fps})
        self.cam.configure(cfg)
        self.cam.start()

    def frames(self) -> Iterator[np.ndarray]:
        while True:
            # picamera2's "RGB888" is BGR in memory order
            yield cv2.cvtColor(self.cam.capture_array(), cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.cam.stop()


def open_source(cfg: CameraConfig) -> FrameSource:
    if cfg.source == "folder":
        return FolderSource(cfg.device, loop=cfg.loop)
    if cfg.source == "video":
        if not Path(cfg.device).exists():
            raise CameraError(f"video file not found: {cfg.device}")
        return OpenCVSource(cfg.device, cfg.width, cfg.height, cfg.fps, loop=cfg.loop, what="video")
    if cfg.source == "v4l2":
        target: str | int = int(cfg.device) if cfg.device.isdigit() else cfg.device
        return OpenCVSource(target, cfg.width, cfg.height, cfg.fps, api=cv2.CAP_V4L2)
    if cfg.source == "gstreamer":
        return OpenCVSource(cfg.device, cfg.width, cfg.height, cfg.fps, api=cv2.CAP_GSTREAMER, what="gstreamer")
    if cfg.source == "picamera2":
        return PiCameraSource(cfg.width, cfg.height, cfg.fps)
    raise CameraError(f"unknown camera source {cfg.source!r}; use picamera2, v4l2, gstreamer, video or folder")


def paced(frames: Iterator[np.ndarray], fps: float) -> Iterator[np.ndarray]:
    """Throttle a replayed source to the configured frame rate (live cameras pace themselves)."""
    period = 1.0 / fps if fps > 0 else 0.0
    nxt = time.monotonic()
    for f in frames:
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        nxt = max(nxt + period, time.monotonic())
        yield f
