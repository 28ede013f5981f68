"""`gausynth view`: the run's splat in a browser (viser), served from this machine.

It binds to 127.0.0.1 unless asked otherwise, so over SSH it is reached through a tunnel
(`ssh -L PORT:localhost:PORT user@host`, printed at start). It shows each variant's model —
the live snapshot of a training in progress (it asks the trainer for snapshots while it runs,
see `live`), else the final PLY — the original and the reimagined side by side when both
exist, with the SfM cameras as frustums, and follows: it reloads what changed. Trainings
snapshot only while a browser is connected, no more often than every `every` seconds, and
only once this viewer has passed the last snapshot on (see `live`); it runs at a lower CPU
priority, so that a training on the same machine keeps its cores.
"""

from __future__ import annotations

import getpass
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._layout import RunLayout
from . import live
from .models import Cameras, Model, cameras, load, models

SH_C0 = 0.28209479177387814
MAX_FRUSTUMS = 200  # more cameras than this are thinned evenly
POLL = 0.25  # seconds between looks for a changed model


def tunnel_line(port: int, host: str = "127.0.0.1") -> str:
    """Gives the `ssh -L` command that reaches this viewer from another machine."""
    machine = socket.gethostname()
    fqdn = socket.getfqdn()
    if "." in fqdn and not fqdn.startswith("localhost"):
        machine = fqdn
    user = getpass.getuser()
    return f"ssh -L {port}:localhost:{port} {user}@{machine}"


def splat_arrays(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Gives viser's splat inputs from raw Gaussians: centers [N, 3], covariances [N, 3, 3],
    rgbs [N, 3] in [0, 1] (degree-0 colour), opacities [N, 1] in [0, 1]."""
    means = np.asarray(params["means"], np.float32)
    q = np.asarray(params["quats"], np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    w, x, y, z = q.T
    R = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                  2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                  2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], 1).reshape(-1, 3, 3)
    s = np.exp(np.asarray(params["scales"], np.float64))
    M = R * s[:, None, :]
    cov = (M @ M.transpose(0, 2, 1)).astype(np.float32)
    rgb = np.clip(np.asarray(params["sh0"], np.float32).reshape(-1, 3) * SH_C0 + 0.5, 0, 1)
    opacity = 1 / (1 + np.exp(-np.asarray(params["opacities"], np.float32).reshape(-1, 1)))
    return {"centers": means, "covariances": cov, "rgbs": rgb, "opacities": opacity}


def scene_axes(cams: Cameras | None, means: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Gives (up [3], right [3], extent) of the scene: up and right from the cameras' mean
    orientation (OpenCV: −y is up, +x right), extent from the model's central 98 %."""
    if cams is not None:
        R = cams.viewmats[:, :3, :3]  # world→camera; its rows are the camera axes in world
        up = -R[:, 1, :].mean(0)
        right = R[:, 0, :].mean(0)
    else:
        up, right = np.array([0.0, -1.0, 0.0]), np.array([1.0, 0.0, 0.0])
    up = up / (np.linalg.norm(up) or 1.0)
    right = right - up * (right @ up)
    right = right / (np.linalg.norm(right) or 1.0)
    if len(means):
        lo, hi = np.percentile(means, [1, 99], axis=0)
        extent = float(np.linalg.norm(hi - lo)) or 1.0
    else:
        extent = 1.0
    return up, right, extent


@dataclass
class Shown:
    model: Model
    mtime: float
    gaussians: int
    step: int | None


class Viewer:
    """A viser server showing one run; `refresh()` reloads the models that changed."""

    def __init__(self, layout: RunLayout, host: str = "127.0.0.1", port: int = 8080,
                 watch: live.Watch | None = None, every: float = live.DEFAULT_EVERY) -> None:
        import viser

        self.layout = layout
        # The trainers' handshake: how many browsers look, what was shown, the rate we take.
        self.watch, self.every = watch, every
        self.clients = 0
        self.took = 0.0  # seconds the last live model took to load and hand to viser
        self.server = viser.ViserServer(host=host, port=port, label=f"GauSynth · {layout.root.name}",
                                        verbose=False)
        self.host = host
        self.cams = cameras(layout)
        self.shown: dict[str, Shown] = {}
        self.axes: tuple[np.ndarray, np.ndarray, float] | None = None
        self.info = self.server.gui.add_markdown("loading …")
        self.show_cameras = self.server.gui.add_checkbox("SfM cameras", initial_value=True)
        self.show_cameras.on_update(lambda _: self._toggle_cameras())
        self._frustums: list[Any] = []
        self.frames: dict[str, Any] = {}  # a node per variant, holding its splat and cameras
        self.server.on_client_connect(lambda _: self._count(+1))
        self.server.on_client_disconnect(lambda _: self._count(-1))

    def _count(self, change: int) -> None:
        """Tells the trainers how many browsers look: with none, they take no snapshots."""
        self.clients = max(0, self.clients + change)
        if self.watch is not None:
            self.watch.update(clients=self.clients)

    @property
    def port(self) -> int:
        return int(self.server.get_port())

    def refresh(self) -> bool:
        """Loads each variant's newest model if it changed; gives whether anything changed."""
        found = models(self.layout)
        changed = False
        for variant in list(self.shown):
            if variant not in found:
                self.frames.pop(variant).remove()
                self._frustums = [f for f in self._frustums if not f.name.startswith(f"/{variant}/")]
                del self.shown[variant]
                changed = True
        for variant, model in found.items():
            try:
                mtime = model.path.stat().st_mtime
            except FileNotFoundError:
                continue
            old = self.shown.get(variant)
            if old is not None and old.model == model and old.mtime == mtime:
                continue
            t0 = time.perf_counter()
            try:
                params = load(model)
            except (OSError, ValueError, KeyError) as e:  # replaced while read: next time
                self.server.gui.add_markdown(f"could not read {model.path}: {e}")
                continue
            self._place(variant, params, first=old is None)
            if model.live:
                self._shown_live(variant, int(params["serial"]), time.perf_counter() - t0)
            step = params.get("step")
            self.shown[variant] = Shown(model, mtime, len(params["means"]),
                                        int(step) if step is not None else None)
            changed = True
        if changed:
            self._arrange()
            self._describe()
        return changed

    def _shown_live(self, variant: str, serial: int, took: float) -> None:
        """Tells the trainer this snapshot is passed on (it writes the next one only then),
        and asks for no more than this viewer can take: at least 4× what one took here."""
        self.took = took
        if self.watch is None:
            return
        every = max(self.every, 4.0 * took)
        changes: dict[str, Any] = {"shown": {variant: serial}}
        if abs(every - float(self.watch.record.get("every", every))) > 0.1 * every:
            changes["every"] = round(every, 3)
        self.watch.update(**changes)

    def _offset(self, variant: str) -> np.ndarray:
        """Side by side: the reimagined model to the right of the original when both are shown."""
        if self.axes is None or variant != "reim" or "orig" not in self.shown:
            return np.zeros(3)
        _, right, extent = self.axes
        return right * extent * 1.1

    def _arrange(self) -> None:
        """Moves each variant's node to its place (the reimagined one usually trains first, so
        it moves aside when the original appears)."""
        for variant, frame in self.frames.items():
            position = tuple(float(v) for v in self._offset(variant))
            if tuple(frame.position) != position:
                frame.position = position

    def _place(self, variant: str, params: dict[str, np.ndarray], first: bool) -> None:
        if self.axes is None:
            self.axes = scene_axes(self.cams, np.asarray(params["means"]))
            self.server.scene.set_up_direction(tuple(float(v) for v in self.axes[0]))
        if variant not in self.frames:
            self.frames[variant] = self.server.scene.add_frame(f"/{variant}", show_axes=False)
        self.server.scene.add_gaussian_splats(f"/{variant}/splat", **splat_arrays(params))
        if first and self.cams is not None:
            self._add_frustums(variant)

    def _add_frustums(self, variant: str) -> None:
        import viser.transforms as vtf

        cams = self.cams
        assert cams is not None
        ids = np.linspace(0, len(cams.names) - 1, min(len(cams.names), MAX_FRUSTUMS)).round().astype(int)
        scale = 0.05 * (self.axes[2] if self.axes else 1.0)
        for i in sorted(set(ids.tolist())):
            c2w = np.linalg.inv(cams.viewmats[i])
            fov = 2 * math.atan(cams.height / (2 * cams.Ks[i][1, 1]))
            handle = self.server.scene.add_camera_frustum(
                f"/{variant}/cameras/{i:04d}", fov=fov, aspect=cams.width / cams.height, scale=scale,
                wxyz=vtf.SO3.from_matrix(c2w[:3, :3]).wxyz, position=c2w[:3, 3],
                color=(90, 90, 90), visible=self.show_cameras.value)
            self._frustums.append(handle)

    def _toggle_cameras(self) -> None:
        for handle in self._frustums:
            handle.visible = self.show_cameras.value

    def _describe(self) -> None:
        from .models import LABELS

        lines = [f"**{self.layout.root.name}**", ""]
        for variant in ("orig", "reim"):
            s = self.shown.get(variant)
            if s is None:
                continue
            where = "left" if variant == "orig" and "reim" in self.shown else \
                "right" if variant == "reim" and "orig" in self.shown else ""
            step = f" · step {s.step}" if s.step is not None else ""
            lines.append(f"- {LABELS[variant]}{' (live)' if s.model.live else ''}"
                         f"{f' · {where}' if where else ''}: {s.gaussians:,} Gaussians{step}")
        if not self.shown:
            lines.append("no model yet: it appears when a training writes its first snapshot")
        self.info.content = "\n".join(lines)

    def stop(self) -> None:
        self.server.stop()


def serve(layout: RunLayout, host: str = "127.0.0.1", port: int = 8080, every: float = 2.0,
          duration: float | None = None, say: Callable[[str], None] = print,
          stop: threading.Event | None = None) -> int:
    """Serves the run until `stop` is set, `duration` seconds pass, or Ctrl-C; gives the port."""
    watch = live.Watch(layout.meta, every, clients=0)  # no browser yet: trainers take no snapshots
    viewer = Viewer(layout, host, port, watch, every)
    port = viewer.port
    watch.record["port"] = port
    local = host in ("127.0.0.1", "localhost", "::1")
    say(f"viewer of {layout.root} on http://localhost:{port}")
    if local:
        say(f"bound to {host} only (this machine); from yours, open a tunnel and browse "
            f"http://localhost:{port}:")
        say(f"  {tunnel_line(port)}")
    else:
        say(f"bound to {host}: reachable by anyone who can reach this machine on port {port}")
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():  # `kill` stops it as Ctrl-C does
        import signal

        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:  # a process of its own: it yields the CPU to trainings on the same machine
            os.nice(10)
        except OSError:
            pass
    deadline = time.monotonic() + duration if duration else math.inf
    try:
        with watch:
            viewer.refresh()
            say("showing: " + (", ".join(s.model.label for s in viewer.shown.values()) or
                               "nothing yet (waiting for a model)"))
            while not stop.is_set() and time.monotonic() < deadline:
                # Look often (a stat per variant): a snapshot shown late holds the next one back.
                stop.wait(min(every, POLL, max(0.0, deadline - time.monotonic())))
                viewer.refresh()
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
    return port


def launch(layout: RunLayout, port: int = 8080, timeout: float = 60.0) -> str:
    """Starts `gausynth view` for the run in its own session unless one already serves it;
    gives what to tell the user (the address and the ssh line). Blocking: call from a worker."""
    import subprocess
    import sys

    def message(record: dict) -> str:
        p = int(record["port"])
        return f"viewer on http://localhost:{p} (this machine only); from yours: {tunnel_line(p)}"

    running = [v for v in live.viewers(layout.meta) if v.get("port")]
    if running:
        return message(running[0])
    layout.logs.mkdir(parents=True, exist_ok=True)
    with open(layout.logs / "viewer.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gausynth_engine", "view", str(layout.root),
                                 "--port", str(port)], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mine = [v for v in live.viewers(layout.meta) if v.get("pid") == proc.pid and v.get("port")]
        if mine:
            return message(mine[0])
        if proc.poll() is not None:
            return f"the viewer exited with code {proc.returncode}; see {layout.logs / 'viewer.log'}"
        time.sleep(0.2)
    return f"the viewer is still starting; see {layout.logs / 'viewer.log'}"
