"""Benchmark (GPU): the whole reimagination of a real 48-frame turn-around, through the CLI.

1. Builds random-weight models of the REAL architectures into --root/models (bench/random_models.py):
   SD-XL base, canny ControlNet, IP-Adapter + ViT-bigG image encoder (fp16, drawn on the GPU,
   saved as safetensors), Swin2SR ×4 (the real-world x4 architecture) and U²-Net exported to
   ONNX as u2net.onnx (what blend loads through rembg). gsplat's kernels compile meanwhile.
2. Runs each preset (default, then quick) as a user would:
   `python -m gausynth_engine run PRESET --set …` with the models pointed at those folders, on
   the frames that bench/e2e_data.py copied into .data/. With --route, the 3D route too
   (run.pipeline = 'reimagine-3d') where the preset accepts it.
3. Reads the run's journal and manifests: per stage wall time, GPU busy share (the mean NVML
   utilisation of the telemetry samples taken while the stage ran), peak VRAM (torch's peak in
   the worker, and the device's most used memory), and the total; checks that every stage ran
   on the real architectures and sizes. Random weights make meaningless images: only time,
   memory and sizes mean anything here. Per stage also: start-up (worker spawn → the stage's own
   code, from the record's worker_ready), spawn → first event, model load (imports + load +
   placing, as reimagine/upscale/blend record it), and a "next step would gain" line (fixed
   costs, GPU idle beyond them, stages run side by side by the graph, splat iterations' cost).
4. Where time is left: each GPU stage against its bare library on the same inputs
   (reimagine vs a bare diffusers call on the run's own sheet, upscale vs a bare Swin2SR loop on
   its frames, splat vs bare gsplat steps on its scene), reusing bench/reimagine.py,
   bench/upscale.py and bench/splat.py.

Everything fits one device command: --budget seconds from the start (a run still going at the
deadline is cancelled and its unfinished stage extrapolated from its progress).

    python bench/e2e.py --out "$OUT"            # on the device, after `source .dev/unpack.sh`
    python bench/e2e.py --tiny                  # the same flow on CPU, tiny models, small sizes
    python bench/e2e.py --tiny --presets quick --route-only   # the 3D route alone, on CPU
    python bench/e2e.py --presets default --set splat.iterations=7000   # what the count costs

On the device (no ../shared, no rembg): here, in the checkout that is sent,
    ../shared/tools/device-bundle.sh rembg pymatting pooch jsonschema jsonschema-specifications \
        referencing rpds-py                     # + 0.7 MB of wheels; numba, scipy, skimage are there
    python bench/e2e_data.py                    # .data/plush-dog-48, ~7 MB
then one call with carry [".dev", ".data"]:
    source .dev/unpack.sh && set -o pipefail && python bench/e2e.py --out "$OUT" 2>&1 | tee "$OUT/e2e.log"
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

GPU_STAGES = ("reimagine", "blend", "upscale", "splat_reim", "splat_orig", "transfer", "sync", "mask")
# --tiny: CPU sizes (the pure-PyTorch rasterizer trains 48² views; SfM gets 384² frames).
TINY_SETS = ["run.device='cpu'", "preprocess.num_frames=16", "preprocess.sd_size=96",
             "preprocess.colmap_size=384", "reimagine.sheet_size=128", "reimagine.steps=4",
             "upscale.tile=64", "upscale.overlap=8", "splat.iterations=1000", "splat.eval_at=[1000]",
             "splat.downscale=8"]
START = time.monotonic()


def elapsed() -> float:
    return time.monotonic() - START


def say(message: str) -> None:
    print(f"[{elapsed():6.1f} s] {message}", flush=True)


# --- 1. models ---------------------------------------------------------------------------------
def warm_gsplat(log: Path) -> subprocess.Popen | None:
    """Starts compiling gsplat's CUDA kernels in the background (one tiny rasterization)."""
    code = ("import torch; from gsplat import rasterization as r; d='cuda'; n=64; "
            "r(torch.randn(n,3,device=d), torch.nn.functional.normalize(torch.randn(n,4,device=d),dim=-1), "
            "torch.full((n,3),0.1,device=d), torch.full((n,),0.5,device=d), torch.rand(n,3,device=d), "
            "torch.eye(4,device=d)[None], torch.tensor([[[50.,0,32],[0,50.,32],[0,0,1]]],device=d), 64, 64); "
            "torch.cuda.synchronize(); print('gsplat ready')")
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, "-c", code], stdout=f, stderr=subprocess.STDOUT,
                                env=child_env())


def warm_rembg(log: Path) -> subprocess.Popen:
    """Imports rembg once in the background: numba compiles pymatting's kernels into its cache
    (a minute on a fresh machine) outside the blend stage's timing."""
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, "-c", "import rembg; print('rembg ready')"], stdout=f,
                                stderr=subprocess.STDOUT, env=child_env())


def build_models(root: Path, device: str, tiny: bool) -> dict[str, Any]:
    """Saves every model the presets need under root/models (once; a marker keeps them)."""
    import random_models as rm

    folder = root / "models"
    marker = folder / "done.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        say(f"models already built in {folder}")
        return info
    shutil.rmtree(folder, ignore_errors=True)
    info: dict[str, Any] = {"seconds": {}}
    t = time.perf_counter()
    info["diffusion"] = rm.save_diffusion(folder, device, tiny)
    info["seconds"]["diffusion"] = round(time.perf_counter() - t, 1)
    say(f"SD-XL + ControlNet + IP-Adapter + image encoder saved in {info['seconds']['diffusion']} s")
    t = time.perf_counter()
    info["swin2sr"] = rm.save_swin2sr(folder / "swin2sr-x4", device, tiny)
    info["seconds"]["swin2sr"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    info["u2net"] = rm.export_u2net(folder / "rembg" / "u2net.onnx", tiny)
    info["seconds"]["u2net"] = round(time.perf_counter() - t, 1)
    say(f"Swin2SR ×4 in {info['seconds']['swin2sr']} s; U²-Net ONNX ({info['u2net']['megabytes']} MB) "
        f"in {info['seconds']['u2net']} s")
    counts = dict(info["diffusion"]["params"], swin2sr=info["swin2sr"]["params"], u2net=info["u2net"]["params"])
    info["params"] = counts
    info["not_real"] = [] if tiny else rm.check_counts(counts)
    info["disk_gb"] = round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**30, 2)
    marker.write_text(json.dumps(info, indent=1))
    return info


def model_sets(info: dict[str, Any]) -> list[str]:
    d = info["diffusion"]
    return [f"reimagine.checkpoint={d['checkpoint']!r}", f"reimagine.controlnet_model={d['controlnet']!r}",
            f"reimagine.ip_adapter_model={d['ip_adapter']!r}", f"upscale.model={info['swin2sr']['folder']!r}",
            f"blend.model={info['u2net']['path']!r}"]


# --- 2. runs through the CLI -------------------------------------------------------------------
def child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
                PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", ORT_DISABLE_TELEMETRY="1")


def route_accepted(preset: str) -> str | None:
    """Gives None when the preset accepts run.pipeline = 'reimagine-3d', else why not."""
    from gausynth_engine import PresetError, load_preset
    from gausynth_engine.cli import find_preset

    try:
        load_preset(find_preset(preset), ["run.pipeline='reimagine-3d'"])
    except PresetError as e:
        return str(e).strip().splitlines()[-1][:200]
    return None


def run_cli(name: str, preset: str, sets: list[str], outputs: Path, deadline: float, logs: Path) -> dict:
    """Runs one preset through `python -m gausynth_engine run`; gives what its journal says."""
    from gausynth_engine import RunLayout

    layout = RunLayout.for_run(outputs, name)
    shutil.rmtree(layout.root, ignore_errors=True)  # a fresh run: every stage runs, none skipped
    argv = [sys.executable, "-m", "gausynth_engine", "run", preset, "--set", f"run.directory={name!r}",
            "--set", f"run.outputs_root={str(outputs)!r}", *[a for s in sets for a in ("--set", s)]]
    log = logs / f"{name}.cli.log"
    say(f"run {name}: {' '.join(argv[2:5])} … ({len(sets) + 2} --set overrides)")
    t = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=child_env(), cwd=ROOT)
        cut = False
        while proc.poll() is None:
            if elapsed() > deadline and not cut:
                say(f"run {name}: the bench's budget is spent: cancelling it (SIGTERM)")
                proc.terminate()
                cut = True
            elif cut and elapsed() > deadline + 20:  # the orchestrator did not stop in time
                kill_workers(layout)
                proc.kill()
            time.sleep(0.5)
    wall = time.perf_counter() - t
    result = read_run(layout)
    result.update(name=name, preset=preset, cli_seconds=round(wall, 1), exit_code=proc.returncode,
                  cut_by_budget=cut, sets=sets)
    say(f"run {name}: exit {proc.returncode} after {wall:.1f} s")
    return result


def kill_workers(layout: Any) -> None:
    """Kills the process group of every worker the journal shows running (they outlive the CLI)."""
    import signal

    from gausynth_engine import RunView

    for stage in RunView.from_journal(layout.journal).stages.values():
        if stage.state == "running" and stage.pid:
            try:
                os.killpg(stage.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def read_run(layout: Any) -> dict:
    """Gives per-stage figures from a run's journal and manifests."""
    from gausynth_engine import (
        Artifact,
        Log,
        Metric,
        Progress,
        RunFinished,
        StageCancelled,
        StageDone,
        StageFailed,
        StagePlanned,
        StageStarted,
        Telemetry,
        read_journal,
        read_manifest,
    )

    events = read_journal(layout.journal)
    stages: dict[str, dict[str, Any]] = {}
    telemetry = [e for e in events if isinstance(e, Telemetry)]
    total = None
    for e in events:
        if isinstance(e, StagePlanned):
            stages[e.stage] = {"state": e.action, "reason": e.reason}
        elif isinstance(e, StageStarted):
            stages.setdefault(e.stage, {}).update(state="running", start=e.t, progress=[])
        elif isinstance(e, Progress) and e.stage in stages:
            stages[e.stage].setdefault("progress", []).append((e.t, e.value, e.total, e.unit))
        elif isinstance(e, StageDone):
            stages[e.stage].update(state="done", end=e.t, seconds=e.seconds, peak_vram=e.peak_vram)
        elif isinstance(e, StageFailed):
            stages.setdefault(e.stage, {}).update(state="failed", end=e.t, error=e.error)
        elif isinstance(e, StageCancelled):
            stages[e.stage].update(state="cancelled", end=e.t)
        elif isinstance(e, RunFinished):
            total = e.seconds
        if isinstance(e, (Progress, Log, Metric, Artifact)) and e.stage in stages:
            stages[e.stage].setdefault("first_event", e.t)  # the worker's first word after its spawn
    last_t = events[-1].t if events else 0.0
    for sid, s in stages.items():
        if "start" not in s:
            continue
        end = s.get("end", last_t)
        s.setdefault("seconds", round(end - s["start"], 3))
        samples = [x for x in telemetry if s["start"] <= x.t <= end]
        utils = [x.utilization for x in samples if x.utilization is not None]
        used = [x.vram_used for x in samples if x.vram_used is not None]
        s["gpu_busy"] = sum(utils) / len(utils) / 100.0 if utils else None
        s["device_vram_max"] = max(used) if used else None
        s["samples"] = len(samples)
        s["gpu_name"] = samples[0].device if samples else None
        manifest = read_manifest(layout, sid)
        if manifest:
            s["record"] = manifest.get("record", {})
            s["device"] = manifest.get("device")
        s.update(overheads(s))
        prog = s.pop("progress", [])
        if s["state"] != "done" and len(prog) >= 2 and prog[-1][1] > 0:
            # An unfinished stage: the whole stage at the rate it had (from its first progress).
            t0, v0 = prog[0][0], prog[0][1]
            t1, v1, tot = prog[-1][0], prog[-1][1], prog[-1][2]
            if v1 > v0 and tot:
                s["estimated_seconds"] = round((t0 - s["start"]) + (t1 - t0) / (v1 - v0) * (tot - v0), 1)
                s["progress_at_cut"] = f"{v1:g}/{tot:g} {prog[-1][3]}"
    return {"run_folder": str(layout.root), "stages": stages, "total_seconds": total}


def overheads(s: dict) -> dict[str, float | None]:
    """Gives a started stage's start-up (worker spawn → its own code runs, from the record's
    worker_ready; else spawn → its first event), spawn → first event, and its model load
    (imports + load + placing on the device, as the stage recorded it)."""
    rec = s.get("record", {})
    first = s.get("first_event")
    ready = rec.get("worker_ready")
    return {"startup_s": round(ready - s["start"], 2) if ready else
            (round(first - s["start"], 2) if first else None),
            "first_event_s": round(first - s["start"], 2) if first else None,
            "load_s": rec.get("load_seconds")}


# --- 3. checks ---------------------------------------------------------------------------------
def check_run(run: dict, expect: dict[str, Any], info: dict[str, Any]) -> list[str]:
    """Gives one line per thing that did not run as the real pipeline would (empty: all did)."""
    problems = []
    for sid, s in run["stages"].items():
        if s["state"] in ("off", "skip", "out"):
            continue
        if s["state"] == "run":
            problems.append(f"{sid}: not reached")
        elif s["state"] != "done":
            problems.append(f"{sid}: {s['state']}{': ' + s['error'] if s.get('error') else ''}")
        elif sid in GPU_STAGES and expect["device"] == "cuda" and s.get("device") != "cuda":
            problems.append(f"{sid}: ran on {s.get('device')}, not cuda")
    rec = run["stages"].get("reimagine", {}).get("record")
    if rec:
        if rec.get("diffusion_size") != expect["sheet_size"]:
            problems.append(f"reimagine: diffused at {rec.get('diffusion_size')}², the preset says "
                            f"{expect['sheet_size']}²")
        if not (rec.get("controlnet") and rec.get("ip_adapter")):
            problems.append(f"reimagine: ControlNet {rec.get('controlnet')}, IP-Adapter {rec.get('ip_adapter')}")
    rec = run["stages"].get("upscale", {}).get("record")
    if rec and (rec.get("scale") != 4 or rec.get("model") != info["swin2sr"]["folder"]):
        problems.append(f"upscale: ×{rec.get('scale')} with {rec.get('model')}")
    rec = run["stages"].get("blend", {}).get("record")
    if rec and rec.get("model") != info["u2net"]["path"]:
        problems.append(f"blend: model {rec.get('model')}, not the U²-Net ONNX")
    return problems


def expected(preset: str, sets: list[str]) -> dict[str, Any]:
    from gausynth_engine import load_preset
    from gausynth_engine.cli import find_preset
    from gausynth_engine.stages.reimagine import diffusion_size

    p = load_preset(find_preset(preset), sets)
    return {"sheet_size": diffusion_size(p.reimagine), "device": "cpu" if p.run.device == "cpu" else "cuda",
            "preset": p}


# --- 4. bare libraries -------------------------------------------------------------------------
def bare_reimagine_child(args: argparse.Namespace) -> None:
    """In a fresh process: bench/reimagine.py's bare diffusers call with the preset's settings."""
    import reimagine as rb

    from gausynth_engine.stages.reimagine import styled_prompts

    job = json.loads(args.bare_reimagine)
    p = expected(job["preset"], job["sets"])["preset"].reimagine
    prompt, negative = styled_prompts(p)
    rb.DEVICE = job["device"]
    rb.SETTINGS.update(prompt=prompt, negative_prompt=negative, steps=p.steps, strength=p.strength,
                       guidance=p.guidance, canny_weight=p.canny_weight, canny_stop=p.canny_stop,
                       ip_weight=p.ip_adapter_weight, seed=1234, size=job["size"])
    figures = rb.run_bare(Path(job["root"]), job["models"], False, sheet_path=Path(job["sheet"]), calls=1,
                          image_out=Path(job["root"]) / "bare-reimagine.png")
    print("RESULT " + json.dumps(figures), flush=True)


def bare_reimagine(run: dict, info: dict, root: Path, device: str) -> dict:
    rec = run["stages"]["reimagine"]
    job = {"preset": run["preset"], "sets": run["sets"], "device": device, "root": str(root),
           "models": info["diffusion"], "size": rec["record"]["diffusion_size"],
           "sheet": str(Path(run["run_folder"]) / "orig_sheets" / "sheet.png")}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--bare-reimagine", json.dumps(job)],
                          capture_output=True, text=True, env=child_env())
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    bare = json.loads(line[7:])
    bare["process_s"] = round(time.perf_counter() - t, 2)
    ours_call = rec["record"]["diffusion_seconds"][0]
    return {"bare": bare, "ours_call_s": ours_call, "ours_stage_s": rec["seconds"],
            "call_ratio": round(ours_call / bare["call_s"], 3),
            "stage_ratio": round(rec["seconds"] / bare["process_s"], 3),
            "note": "bare keeps the IP-Adapter on through all steps (the preset stops it at "
                    f"{expected(run['preset'], run['sets'])['preset'].reimagine.ip_adapter_stop})"}


def bare_upscale(run: dict, info: dict, device: str, frames: int) -> dict:
    """bench/upscale.py's reference loop (processor → model → resize), plain transformers."""
    from types import SimpleNamespace

    import torch
    from transformers import Swin2SRForImageSuperResolution, Swin2SRImageProcessor
    from upscale import reference_upscale

    from gausynth_engine._media import list_images, read_image

    files = list_images(Path(run["run_folder"]) / "blend_transparent")[:frames]
    images = [read_image(f)[..., :3] for f in files]
    t = time.perf_counter()
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    model = Swin2SRForImageSuperResolution.from_pretrained(info["swin2sr"]["folder"]).to(device).eval()
    up = SimpleNamespace(model=model, processor=Swin2SRImageProcessor.from_pretrained(info["swin2sr"]["folder"]),
                         device=device, scale=4)
    loaded = time.perf_counter()
    reference_upscale(up, images, batch=2)
    if device == "cuda":
        torch.cuda.synchronize()
    done = time.perf_counter()
    stage = run["stages"]["upscale"]
    n_all = len(stage["record"]["frames"])
    ours_per = stage["seconds"] / n_all
    bare_per = (done - loaded) / len(images)
    del model, up
    if device == "cuda":
        torch.cuda.empty_cache()
    bare_all = (loaded - t) + bare_per * n_all  # loading + the loop over every frame of the run
    return {"frames_timed": len(images), "bare_load_s": round(loaded - t, 2),
            "bare_ms_per_frame": round(bare_per * 1e3), "ours_stage_ms_per_frame": round(ours_per * 1e3),
            "bare_all_frames_s": round(bare_all, 1), "ours_stage_s": stage["seconds"],
            "ratio": round(stage["seconds"] / bare_all, 3),
            "note": f"ours: the whole stage over {n_all} frames (load, tiles, PNG writes at the SfM size, "
                    "SSIM); bare: load + the model loop (batch 2, fp32 + TF32 as ours), timed on "
                    f"{len(images)} frames and scaled to {n_all}"}


def bare_splat(run: dict, device: str, iterations: int) -> dict:
    """bench/splat.py's bare gsplat loop on the scene splat_orig trained on, same schedule."""
    if device != "cuda":
        return {"skipped": "gsplat needs CUDA (the CPU run trains on the pure-PyTorch rasterizer)"}
    import tempfile

    from splat import bare_gsplat

    from gausynth_engine import RunLayout
    from gausynth_engine.poses import prepare_views
    from gausynth_engine.splatting.dataset import load_scene
    from gausynth_engine.splatting.train import TrainConfig

    stage = run["stages"]["splat_orig"]
    p = expected(run["preset"], run["sets"])["preset"].splat
    layout = RunLayout(Path(run["run_folder"]))
    with tempfile.TemporaryDirectory() as views:
        prepare_views(layout, layout.root / stage["record"]["source"], Path(views))
        scene = load_scene(layout.colmap_sparse, Path(views), p.background, p.downscale)
    bare = bare_gsplat(scene, TrainConfig(iterations=iterations, test_every=p.test_every,
                                          background=p.background, eval_at=()))
    ours = stage["record"]["its"]
    return {"iterations": iterations, "bare_its": round(bare["its"], 1), "ours_its": ours,
            "ratio": round(ours / bare["its"], 3), "bare_gaussians": bare["num_gaussians"],
            "ours_gaussians": stage["record"]["num_gaussians"],
            "note": f"ours over all {p.iterations} iterations incl. events/checkpoints; "
                    f"bare over {iterations}"}


# --- 5. report ---------------------------------------------------------------------------------
def gib(n: int | None) -> str:
    return f"{n / 2**30:.1f}" if n else "–"


def secs_or_dash(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def stage_table(run: dict) -> list[str]:
    lines = [f"{'stage':<12} {'state':<9} {'wall s':>8} {'share':>6} {'GPU busy':>8} {'start-up':>8} "
             f"{'1st event':>9} {'load s':>7} {'peak VRAM GiB':>13} {'device max GiB':>14}  notes"]
    ran = {k: v for k, v in run["stages"].items() if "start" in v}
    total = sum(s.get("estimated_seconds", s["seconds"]) for s in ran.values()) or 1.0
    for sid, s in run["stages"].items():
        if "start" not in s:
            why = s.get("error") or s.get("reason", "")
            lines.append(f"{sid:<12} {s['state']:<9} {'':>8} {'':>6} {'':>8} {'':>8} {'':>9} {'':>7} {'':>13} "
                         f"{'':>14}  {why[:80]}")
            continue
        secs = s.get("estimated_seconds", s["seconds"])
        busy = f"{s['gpu_busy']:.0%}" if s.get("gpu_busy") is not None else "N/A"
        note = stage_note(sid, s)
        lines.append(f"{sid:<12} {s['state']:<9} {s['seconds']:>8.1f} {secs / total:>6.0%} {busy:>8} "
                     f"{secs_or_dash(s.get('startup_s')):>8} {secs_or_dash(s.get('first_event_s')):>9} "
                     f"{secs_or_dash(s.get('load_s')):>7} "
                     f"{gib(s.get('peak_vram')):>13} {gib(s.get('device_vram_max')):>14}  {note}")
    return lines


def stage_note(sid: str, s: dict) -> str:
    rec = s.get("record", {})
    if "estimated_seconds" in s:
        return f"cut at {s['progress_at_cut']}; whole stage ≈ {s['estimated_seconds']:.0f} s at that rate"
    if s.get("error"):
        return s["error"][:90]
    if sid == "reimagine" and rec:
        return (f"{rec.get('diffusion_size')}², {rec.get('steps_per_candidate')} steps, pipeline call "
                f"{rec.get('diffusion_seconds', ['?'])[0]} s")
    if sid == "blend" and rec:
        return f"masks on {', '.join(rec.get('providers', []))}"
    if sid == "upscale" and rec:
        return f"{len(rec.get('frames', []))} frames ×{rec.get('scale')}, {Path(str(rec.get('model'))).name}"
    if sid == "sfm" and rec:
        return f"registered {rec.get('registered')}/{rec.get('total')}, {rec.get('points3d')} points"
    if sid.startswith("splat") and rec:
        return (f"{rec.get('views')} views {rec.get('size')}, {rec.get('its')} it/s, "
                f"{rec.get('num_gaussians')} Gaussians")
    return ""


def next_step(sid: str, s: dict) -> tuple[float, str]:
    """Gives (seconds a next step would gain, what that step is) for one started stage.

    The fixed costs (start-up, model load) are what the stage spends before its own work; the
    GPU's idle share of the rest is what feeding it better could win at most.
    """
    secs = s.get("estimated_seconds", s["seconds"])
    fixed = (s.get("startup_s") or 0.0) + (s.get("load_s") or 0.0)
    busy = s.get("gpu_busy")
    idle = max(0.0, secs * (1 - busy) - fixed) if busy is not None else None
    parts = []
    if fixed >= 1.0:
        parts.append((fixed, f"start-up + model load {fixed:.1f} s: a worker kept warm with its models "
                             "loaded (or loading straight onto the GPU)"))
    if sid in GPU_STAGES and idle is not None and idle >= 1.0:
        parts.append((idle, f"GPU idle {idle:.0f} s beyond that: keep it fed (decode, write and score "
                            "beside it, batch the per-frame loops on the GPU)"))
    elif sid not in GPU_STAGES and busy is not None:
        parts.append((secs - fixed, f"CPU work {secs - fixed:.0f} s: run it beside the GPU stages it does "
                                    "not depend on, or on the GPU"))
    if not parts:
        return 0.0, "little left outside the work itself"
    gain = max(g for g, _ in parts)
    return gain, "; ".join(t for _, t in parts)


def overlap_gain(run: dict) -> tuple[float, float]:
    """Gives (serial sum, critical path) in seconds of the stages that ran, by the inputs each
    one's plan gave it (its manifest; else the stage graph's `after`): what running each stage as
    soon as its inputs exist would give at best."""
    import json

    from gausynth_engine._layout import RunLayout
    from gausynth_engine.stages import BY_ID

    layout = RunLayout(Path(run["run_folder"]))

    def inputs(sid: str) -> list[str]:
        try:
            return list(json.loads(layout.manifest(sid).read_text(encoding="utf-8"))["inputs"])
        except (OSError, ValueError, KeyError, TypeError):
            return list(BY_ID[sid].after) if sid in BY_ID else []

    secs = {sid: s.get("estimated_seconds", s["seconds"]) for sid, s in run["stages"].items() if "start" in s}
    finish: dict[str, float] = {}
    for sid in secs:  # the journal's order is a topological order
        before = [finish[u] for u in inputs(sid) if u in finish]
        finish[sid] = max(before, default=0.0) + secs[sid]
    return sum(secs.values()), max(finish.values(), default=0.0)


def splat_cost(run: dict) -> str | None:
    """Gives what the splat trainings' iteration count costs at their measured rate, or None."""
    its = {sid: s["record"]["its"] for sid, s in run["stages"].items()
           if sid.startswith("splat") and s.get("state") == "done" and s.get("record", {}).get("its")}
    if not its:
        return None
    p = expected(run["preset"], run["sets"])["preset"].splat
    per_1k = sum(1000.0 / v for v in its.values())
    cut = round(p.iterations * 0.3)
    return (f"  [splat] iterations = {p.iterations}: {per_1k:.1f} s per 1,000 iterations over "
            f"{len(its)} training(s) at the measured it/s; {p.iterations} → {p.iterations - cut} "
            f"would gain ≈ {per_1k * cut / 1000:.0f} s (quality effect not measured here; the lead's call)")


def dominant(run: dict) -> list[str]:
    """Gives which stages dominate and what a next step would gain on each, and on the run."""
    ran = [(sid, s) for sid, s in run["stages"].items() if "start" in s]
    total = sum(s.get("estimated_seconds", s["seconds"]) for _, s in ran) or 1.0
    out = []
    for sid, s in sorted(ran, key=lambda x: -x[1].get("estimated_seconds", x[1]["seconds"]))[:4]:
        secs = s.get("estimated_seconds", s["seconds"])
        busy = s.get("gpu_busy")
        gain, what = next_step(sid, s)
        out.append(f"  {sid}: {secs:.0f} s ({secs / total:.0%}), GPU busy "
                   f"{'N/A' if busy is None else f'{busy:.0%}'} — next step would gain ≈ {gain:.0f} s: {what}")
    serial, critical = overlap_gain(run)
    if serial - critical >= 1.0:
        took = run.get("total_seconds")
        out.append(f"  the run: stages one after another {serial:.0f} s; each started as soon as its inputs "
                   f"exist (e.g. sfm beside sheet → reimagine) ≤ {critical:.0f} s: up to "
                   f"{serial - critical:.0f} s"
                   + (f"; this run took {took:.0f} s (run.parallel_stages: stages side by side, "
                      "each sharing the GPU and the cores)" if took else ""))
    cost = splat_cost(run)
    if cost:
        out.append(cost)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / ".data" / "plush-dog-48",
                    help="the turn-around frames (bench/e2e_data.py writes them)")
    ap.add_argument("--root", type=Path, default=Path("/tmp/gausynth-e2e"), help="models and run folders")
    ap.add_argument("--out", type=Path, default=None, help="folder for results.json, table.txt and logs")
    ap.add_argument("--presets", nargs="+", default=["default", "quick"])
    ap.add_argument("--route", action="store_true", help="also run the 3D route (run.pipeline = reimagine-3d)")
    ap.add_argument("--route-only", action="store_true",
                    help="run only the 3D route of each preset (a dry run of it on CPU in minutes)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds for the whole bench (default 450 on the GPU, 3600 with --tiny)")
    ap.add_argument("--no-bare", action="store_true", help="leave out the bare-library comparisons")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                    help="an override for every run (e.g. splat.iterations=7000 to see what the count costs)")
    ap.add_argument("--tiny", action="store_true", help="tiny models, small sizes, on CPU (a dry run)")
    ap.add_argument("--bare-reimagine", help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.bare_reimagine:
        bare_reimagine_child(args)
        return
    device = "cpu" if args.tiny else "cuda"
    args.budget = args.budget or (3600.0 if args.tiny else 450.0)
    if not args.tiny:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("bench/e2e.py needs a CUDA GPU (or --tiny for the CPU dry run)")
    if not args.data.is_dir() or not any(args.data.iterdir()):
        raise SystemExit(f"{args.data}: no frames; run `python bench/e2e_data.py` first (on the device: "
                         "carry .data)")
    root = args.root / ("tiny" if args.tiny else "real")
    logs = args.out or root / "logs"
    for folder in (root, logs):
        folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"device": device, "data": str(args.data), "runs": [], "bare": {}}

    def save() -> None:
        (logs / "results.json").write_text(json.dumps(results, indent=1, default=str))

    say("random weights: the images mean nothing; only time, memory and sizes are measured")
    warm = None if args.tiny or (root / "gsplat.ok").exists() else warm_gsplat(root / "gsplat_warm.log")
    rembg_warm = warm_rembg(root / "rembg_warm.log")
    info = build_models(root, device, args.tiny)
    results["models"] = info
    if rembg_warm.wait() != 0:
        say("rembg does not import here: blend will fail; bundle rembg and its needs:\n"
            + (root / "rembg_warm.log").read_text()[-1500:])
    import onnxruntime as ort

    results["onnxruntime_providers"] = ort.get_available_providers()
    if not args.tiny and "CUDAExecutionProvider" not in results["onnxruntime_providers"]:
        say("onnxruntime here has no CUDA provider: mask and blend run u2net.onnx through PyTorch on "
            "the GPU (gausynth_engine/_onnx_torch.py; the stage tables' notes name the provider)")
    if warm is not None:
        code = warm.wait()
        say(f"gsplat kernels {'ready' if code == 0 else 'FAILED to build:'}")
        if code:
            print((root / "gsplat_warm.log").read_text()[-3000:], flush=True)
        if code == 0:
            (root / "gsplat.ok").write_text("")
    save()

    plans = [] if args.route_only else [(p, p, []) for p in args.presets]
    if args.route or args.route_only:
        for p in args.presets:
            why = route_accepted(p)
            if why:
                say(f"3D route with {p}: not run, the preset refuses run.pipeline = 'reimagine-3d' ({why})")
                results.setdefault("route_skipped", {})[p] = why
            else:
                plans.append((f"{p}-3d", p, ["run.pipeline='reimagine-3d'"]))
    base = [f"run.input={str(args.data.absolute())!r}", "sfm.allow_low_registration=true",
            *model_sets(info), *(TINY_SETS if args.tiny else []), *args.sets]
    reserve = 15.0
    for k, (name, preset, extra) in enumerate(plans):
        if k and elapsed() > args.budget - 60:
            say(f"run {name}: not started, {args.budget - elapsed():.0f} s of the budget left")
            results.setdefault("not_run", []).append(name)
            continue
        sets = base + extra
        run = run_cli(f"e2e-{name}", preset, sets, root / "outputs", args.budget - reserve, logs)
        run["problems"] = check_run(run, expected(preset, sets), info)
        results["runs"].append(run)
        save_failures(run, logs)
        save()

    if not args.no_bare:
        compare(results, info, root, device, args.budget - reserve)
        save()
    report(results, args, logs)
    save()


def save_failures(run: dict, logs: Path) -> None:
    """Appends the end of each failed stage's log to failures.txt (the device gives back 8 files)."""
    from gausynth_engine import RunLayout

    layout = RunLayout(Path(run["run_folder"]))
    for sid, s in run["stages"].items():
        log = layout.log_file(sid)
        if s["state"] == "failed" and log.exists():
            with open(logs / "failures.txt", "a") as f:
                f.write(f"=== {run['name']} / {sid}: {s.get('error', '')}\n{log.read_text()[-6000:]}\n")


def compare(results: dict, info: dict, root: Path, device: str, deadline: float) -> None:
    """Runs the bare-library baselines on the first run's own inputs, while the budget allows."""
    done = {r["name"]: r for r in results["runs"]}
    first = next(iter(done.values()), None)
    if first is None:
        return
    ok = {sid for sid, s in first["stages"].items() if s["state"] == "done"}
    jobs = []
    if "reimagine" in ok:
        jobs.append(("reimagine", 60, lambda: bare_reimagine(first, info, root, device)))
    if "upscale" in ok:
        jobs.append(("upscale", 20, lambda: bare_upscale(first, info, device, 12)))
    # splat: the run with the shortest training, bare for as many iterations as it trained
    splats = sorted((r for r in done.values() if r["stages"].get("splat_orig", {}).get("state") == "done"),
                    key=lambda r: r["stages"]["splat_orig"]["seconds"])
    if splats:
        its = expected(splats[0]["preset"], splats[0]["sets"])["preset"].splat.iterations
        jobs.append(("splat", 40, lambda: bare_splat(splats[0], device, its)))
    for name, cost, job in jobs:
        if elapsed() + cost > deadline:
            results["bare"][name] = {"skipped": f"not enough budget left ({deadline - elapsed():.0f} s)"}
            continue
        say(f"bare {name} …")
        try:
            results["bare"][name] = job()
        except Exception as e:  # noqa: BLE001 - a baseline failing must not lose the runs' figures
            results["bare"][name] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        say(f"bare {name}: {results['bare'][name]}")


def report(results: dict, args: argparse.Namespace, logs: Path) -> None:
    info = results["models"]
    lines = ["", "=" * 100,
             f"GauSynth end to end — {'TINY models on CPU (a dry run)' if args.tiny else 'real architectures'}, "
             f"random weights (images meaningless; time, memory and sizes are what count)",
             f"data: {results['data']} ({len(os.listdir(results['data']))} frames)"]
    params = info.get("params", {})
    lines.append("models: " + ", ".join(f"{k} {v / 1e6:,.1f} M" for k, v in params.items())
                 + f"; {info.get('disk_gb')} GB on disk; built in "
                 + ", ".join(f"{k} {v} s" for k, v in info.get("seconds", {}).items()))
    if info.get("not_real"):
        lines.append("NOT the published architectures: " + "; ".join(info["not_real"]))
    elif not args.tiny:
        lines.append("parameter counts match the published models (SD-XL UNet/VAE/text encoders, "
                     "ControlNet canny, ViT-bigG image encoder, U²-Net)")
    provs = results["onnxruntime_providers"]
    lines.append(f"onnxruntime providers: {', '.join(provs)}"
                 + ("" if args.tiny or "CUDAExecutionProvider" in provs
                    else " — no CUDA provider: U²-Net runs its ONNX graph through PyTorch on the GPU"))
    for run in results["runs"]:
        gpu = next((s.get("gpu_name") for s in run["stages"].values() if s.get("gpu_name")), "N/A")
        lines += ["", f"preset {run['preset']} ({run['name']}) on {gpu}: total {run['total_seconds']} s in the "
                  f"journal, {run['cli_seconds']} s for the CLI process, exit {run['exit_code']}"
                  + (" — CUT by the bench's budget" if run["cut_by_budget"] else "")]
        lines += stage_table(run)
        if run["cut_by_budget"] or run["total_seconds"] is None:
            est = sum(s.get("estimated_seconds", s.get("seconds", 0)) for s in run["stages"].values()
                      if "start" in s)
            lines.append(f"unfinished: the stages that started add up to ≈ {est:.0f} s at their rates; "
                         "stages that never started are not counted")
        lines.append("dominant stages, and what a next step would gain:")
        lines += dominant(run)
        lines.append("checks: " + ("every stage ran on the real architecture and sizes" if not run["problems"]
                                   else "; ".join(run["problems"])))
    for name in results.get("not_run", []):
        lines.append(f"\nrun {name}: not started (budget)")
    for p, why in results.get("route_skipped", {}).items():
        lines.append(f"3D route ({p}): not run — {why}")
    if results["bare"]:
        lines += ["", "against the bare libraries (ratio = ours / bare time, or ours / bare it/s for splat):"]
        for name, r in results["bare"].items():
            lines.append(f"  {name}: {json.dumps(r, default=str)}")
    lines.append(f"\nbench wall {elapsed():.0f} s")
    text = "\n".join(lines)
    print(text, flush=True)
    (logs / "table.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
