"""The 3DGS training loop: resumable, evaluated, watched; writes the standard output folder.

`train(scene, config, out_dir, work_dir, report)` trains on the scene's train split and writes,
under `out_dir`: `results.json`, `test/ours_{step}/{renders,gt}/`, `train/ours_{step}/renders/`
per evaluation, `renders_{iterations}/` (every view in frame order) and
`point_cloud/iteration_{step}/point_cloud.ply`. `work_dir` holds the checkpoint; `report` is
anything with `progress(value, total, unit)`, `metric(name, value, step)` and `log(message)`
(a StageContext; `artifact(path, kind)` too when it has one).

Metrics: "loss" (EMA), "psnr" (training, EMA), "num_gaussians", "its_per_s", "eta_s",
"peak_vram" (bytes, CUDA) about once per `report_every` seconds; "eval_psnr" and "eval_ssim" at
each evaluation; "checkpoint" (the step) with a "checkpoint" artifact at each checkpoint.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ..quality import psnr_of_mse
from . import checkpoint
from .dataset import BACKGROUNDS, Scene
from .metrics import psnr, splat_loss, ssim
from .model import init_params, make_optimizers, means_lr, params_from_model
from .ply import write_ply
from .rasterize import pick_backend, render


class OutOfMemory(RuntimeError):
    """The GPU ran out of memory; the message names the size and the knobs that help."""


class Reporter(Protocol):
    def progress(self, value: float, total: float, unit: str = "") -> None: ...
    def metric(self, name: str, value: float, step: int | None = None) -> None: ...
    def log(self, message: str, level: str = "info") -> None: ...


@dataclass(frozen=True)
class TrainConfig:
    """What one training does; the stage fills it from the `[splat]` preset section."""

    iterations: int
    eval_at: tuple[int, ...] = (7000, 10000, 12000, 15000)
    sh_degree: int = 0
    background: str = "white"
    test_every: int = 8
    strategy: str = "default"  # "default" (the paper's schedule) or "mcmc"
    max_gaussians: int = 1_000_000  # MCMC's cap
    ssim_lambda: float = 0.2
    checkpoint_every: int = 1000
    packed: bool = False
    backend: str = ""  # "" = gsplat on CUDA, the PyTorch rasterizer elsewhere
    seed: int = 0
    random_background: bool = True  # masked views: a new background colour every step
    antialiased: bool = False  # gsplat's antialiased rasterization (Mip-Splatting's 2-D filter)
    absgrad: bool = False  # densify on absolute 2-D gradients (AbsGS), with its own threshold
    opacity_reset: bool = True  # the 3DGS recipe's opacity resets while densifying
    exposure: bool = False  # learn a colour affine per train image (exposure, white balance)
    exposure_lr: float = 5e-3  # Adam step of those affines: up to ~0.5 % per visit of a view
    # Densification schedule; 0 = scaled to the run (see `schedule`).
    refine_start: int = 0
    refine_every: int = 0
    refine_stop: int = 0
    densify_until: float = 1.0  # share of the run that densifies (refine_stop = 0), ≤ 15k steps
    reset_every: int = 0
    grow_grad2d: float = 0.0  # densify Gaussians whose mean 2-D gradient exceeds this; 0 = default
    sh_every: int = 0  # one more SH band every this many steps; 0 = scaled to the run
    # Starting from a trained model (`Trainer(init=…)`): densify or not, and the means' learning
    # rate as a share of the recipe's (a fine-tune moves the Gaussians less).
    init_refine: bool = False
    init_means_lr: float = 0.1
    report_every: float = 1.0  # seconds between metric events

    @property
    def eval_steps(self) -> list[int]:
        """Gives the evaluation steps: those of eval_at not above the total, and the last."""
        return sorted({s for s in self.eval_at if 0 < s <= self.iterations} | {self.iterations})


@dataclass
class TrainResult:
    start_step: int  # the step it resumed from (0 = fresh)
    final_step: int
    num_gaussians: int
    train_seconds: float  # time in optimisation steps only (no evaluation or checkpoints)
    results: dict[str, Any] = field(default_factory=dict)  # what results.json holds
    params: dict[str, np.ndarray] = field(default_factory=dict)  # the final raw Gaussians

    @property
    def steps_run(self) -> int:
        return self.final_step - self.start_step

    @property
    def its(self) -> float:
        """Training iterations per second of this process."""
        return self.steps_run / self.train_seconds if self.train_seconds > 0 else 0.0


class SilentReporter:
    def progress(self, value: float, total: float, unit: str = "") -> None:
        pass

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def log(self, message: str, level: str = "info") -> None:
        pass


@dataclass(frozen=True)
class Schedule:
    """When densification and the other timed events happen, in steps."""

    refine_start: int
    refine_stop: int
    refine_every: int
    reset_every: int
    reset_stop: int  # opacity resets only before this step (the run's first half)
    sh_every: int
    grow_grad2d: float


def schedule(config: TrainConfig, fine_tune: bool = False) -> Schedule:
    """Gives the training's schedule: the 3DGS recipe's (densify from 500 to 15k every 100,
    opacity reset every 3k, one SH band per 1k) for runs of 30k steps, compressed for shorter
    runs so that a short training still grows: densification ends at `densify_until` of the
    run (all of it by default, as gsplat's defaults do below 15k steps), starts by its 5 %,
    and opacity resets come every 30 % of the run at most, in its first half only (a late reset
    leaves too little time to regrow). Fields set in the config win.

    A fine-tune of a trained model (`fine_tune`) has every SH band from the first step, no
    opacity reset (it would erase the geometry it starts from) and densifies only when
    `config.init_refine` asks."""
    t = config.iterations
    stop = config.refine_stop or min(15_000, int(config.densify_until * t))
    start = config.refine_start or min(500, max(10, t // 20))
    every = config.refine_every or min(100, max(10, t // 100))
    reset = config.reset_every or min(3000, max(100, (3 * t) // 10))
    sh_every = config.sh_every or min(1000, max(10, t // 10))
    grad = config.grow_grad2d or (0.0008 if config.absgrad else 0.0002)
    plan = Schedule(start, stop, every, reset, min(stop, t // 2 + 1), sh_every, grad)
    if not fine_tune:
        return plan
    never = 10 * t + 10
    plan = replace(plan, reset_every=never, sh_every=1)
    return plan if config.init_refine else \
        replace(plan, refine_start=never, refine_stop=never + 1, refine_every=never)


def make_strategy(config: TrainConfig, s: Schedule) -> Any:
    """Gives the gsplat densification strategy the config asks for, on schedule `s`."""
    from gsplat.strategy import DefaultStrategy, MCMCStrategy

    if config.strategy == "mcmc":
        return MCMCStrategy(cap_max=config.max_gaussians, refine_start_iter=s.refine_start,
                            refine_stop_iter=s.refine_stop, refine_every=s.refine_every)
    # gsplat 1.5.3's own opacity reset never fires (`step % n == 0 & step > 0` chains to False),
    # so the trainer resets opacities itself (`Trainer.step`); its reset_every only pauses nothing.
    return DefaultStrategy(refine_start_iter=s.refine_start, refine_stop_iter=s.refine_stop,
                           refine_every=s.refine_every, reset_every=s.reset_every,
                           grow_grad2d=s.grow_grad2d, absgrad=config.absgrad)


class Trainer:
    """Holds one training's tensors; `step()` is one optimisation step on one train view.

    `init`: a trained model's raw Gaussians to start from (see `params_from_model`) instead of
    the scene's SfM points — a fine-tune on new pictures of the same geometry."""

    def __init__(self, scene: Scene, config: TrainConfig, device: str,
                 init: dict[str, np.ndarray] | None = None) -> None:
        self.scene, self.config, self.device = scene, config, device
        self.backend = config.backend or pick_backend(device)
        if config.strategy == "mcmc" and self.backend != "gsplat":
            raise ValueError("splat.strategy = 'mcmc' needs gsplat's CUDA kernels (relocation); "
                             "accepted without a GPU: 'default'")
        if self.backend != "gsplat" and (config.antialiased or config.absgrad):
            raise ValueError("splat.antialiased and splat.absgrad need gsplat's CUDA kernels; "
                             "accepted without a GPU: both false")
        self.train_ids, self.test_ids = scene.split(config.test_every)
        self.width, self.height = scene.size
        self.fine_tune = init is not None
        self.schedule = schedule(config, self.fine_tune)
        self.images = torch.from_numpy(scene.images).to(device)  # uint8 [V, H, W, 3]
        # uint8 [V, H, W, 1] object masks, bool [V, H, W, 1] valid pixels; None = all.
        self.alphas = None if scene.alphas is None else \
            torch.from_numpy(scene.alphas).to(device)[..., None]
        self.valid = None if scene.valid is None else torch.from_numpy(scene.valid).to(device)[..., None]
        self.Ks = torch.as_tensor(scene.Ks, dtype=torch.float32, device=device)
        self.viewmats = torch.as_tensor(scene.viewmats, dtype=torch.float32, device=device)
        self.background = torch.tensor(BACKGROUNDS[config.background], device=device)
        self.scene_scale = scene.scene_scale()
        mcmc = config.strategy == "mcmc"
        if init is not None:
            self.params = params_from_model(init, config.sh_degree, device)
        else:
            self.params = init_params(scene.points, scene.colors, config.sh_degree, self.scene_scale,
                                      init_opacity=0.5 if mcmc else 0.1,
                                      init_scale=0.1 if mcmc else 1.0, seed=config.seed,
                                      device=device, centre=scene.look_at())
        self.optimizers = make_optimizers(self.params, self.scene_scale)
        self.strategy = make_strategy(config, self.schedule)
        self.strategy.check_sanity(self.params, self.optimizers)
        self.state = self.strategy.initialize_state(scene_scale=self.scene_scale) if not mcmc \
            else self.strategy.initialize_state()
        # Per-image exposure (None unless asked for): the render's colours × (I + A_v) + b_v, A/b
        # learnt per train view, float32 [V, 12] (9 matrix + 3 offset deltas); the model itself
        # stays exposure-free and test views render with none.
        self.exposure = torch.nn.Parameter(torch.zeros(len(scene.names), 12, device=device)) \
            if config.exposure else None
        self.exposure_opt = None if self.exposure is None else \
            torch.optim.Adam([self.exposure], lr=config.exposure_lr)
        self.views = torch.Generator().manual_seed(config.seed)  # which view each step trains on
        self.step_done = 0
        self.loss_ema: torch.Tensor | None = None
        self.mse_ema: torch.Tensor | None = None
        self.results: dict[str, Any] = {}

    @property
    def num_gaussians(self) -> int:
        return len(self.params["means"])

    def render(self, view: int, sh_degree: int | None = None, background: torch.Tensor | None = None,
               exposed: bool = False) -> tuple[torch.Tensor, dict[str, Any]]:
        """Gives (rgb [1, H, W, 3], info) of one view with the current Gaussians, over
        `background` [3] (default: the evaluation background). `exposed`: through the view's
        learnt exposure — the premultiplied colour c·α becomes (I + A)·c·α + b·α, then the
        background fills 1 − α."""
        c = self.config
        background = self.background if background is None else background
        rgb, alpha, info = render(self.params, self.viewmats[view:view + 1], self.Ks[view:view + 1],
                                  self.width, self.height,
                                  sh_degree=c.sh_degree if sh_degree is None else sh_degree,
                                  background=torch.zeros_like(background) if exposed else background,
                                  backend=self.backend, packed=c.packed,
                                  antialiased=c.antialiased, absgrad=c.absgrad)
        if exposed:
            d = self.exposure[view]
            matrix = torch.eye(3, device=self.device) + d[:9].view(3, 3)
            rgb = rgb @ matrix.T + d[9:] * alpha + background * (1.0 - alpha)
        return rgb, info

    def target(self, view: int, background: torch.Tensor) -> torch.Tensor:
        """Gives the view's picture [1, H, W, 3] in [0, 1] over `background` through its mask."""
        rgb = self.images[view:view + 1].float() / 255.0
        if self.alphas is None:
            return rgb
        a = self.alphas[view:view + 1].float() / 255.0
        return rgb * a + background * (1.0 - a)

    def step(self) -> None:
        """Trains one step on a random train view (densifying as the strategy says)."""
        c = self.config
        step = self.step_done + 1
        view = self.train_ids[int(torch.randint(len(self.train_ids), (1,), generator=self.views))]
        lr = means_lr(step, c.iterations, self.scene_scale) * (c.init_means_lr if self.fine_tune else 1.0)
        for group in self.optimizers["means"].param_groups:
            group["lr"] = lr
        sched = self.schedule
        background = self.background
        if self.alphas is not None and c.random_background:
            background = torch.rand(3, device=self.device)
        target = self.target(view, background)
        rgb, info = self.render(view, min(step // sched.sh_every, c.sh_degree), background,
                                exposed=self.exposure is not None)
        self.strategy.step_pre_backward(self.params, self.optimizers, self.state, step, info)
        if self.valid is not None:  # pixels with no picture: no loss (the render stands in)
            target = torch.where(self.valid[view:view + 1], target, rgb.detach())
        loss = splat_loss(rgb, target, c.ssim_lambda)
        if self.exposure is not None:  # keep the corrections small: the model holds colour
            loss = loss + 0.1 * self.exposure[view].square().mean()
        if c.strategy == "mcmc":  # gsplat's MCMC regularisers
            loss = loss + 0.01 * torch.sigmoid(self.params["opacities"]).mean() \
                + 0.01 * torch.exp(self.params["scales"]).mean()
        loss.backward()
        for opt in (*self.optimizers.values(), *([self.exposure_opt] if self.exposure_opt else [])):
            opt.step()
            opt.zero_grad(set_to_none=True)
        if c.strategy == "mcmc":
            self.strategy.step_post_backward(self.params, self.optimizers, self.state, step, info,
                                             lr=lr)
        else:
            self.strategy.step_post_backward(self.params, self.optimizers, self.state, step, info,
                                             packed=c.packed)
            if c.opacity_reset and sched.refine_start < step < sched.reset_stop \
                    and step % sched.reset_every == 0:
                from gsplat.strategy.ops import reset_opa

                reset_opa(self.params, self.optimizers, self.state, value=2.0 * self.strategy.prune_opa)
        # An EMA over every 10th step's loss (and that step's MSE, for a training PSNR): a
        # few small kernels every 10 steps instead of every step.
        if self.loss_ema is None or step % 10 == 0:
            mse = torch.mean((rgb.detach() - target) ** 2)
            if self.loss_ema is None:
                self.loss_ema, self.mse_ema = loss.detach().clone(), mse
            else:
                self.loss_ema.lerp_(loss.detach(), 0.3)
                self.mse_ema.lerp_(mse, 0.3)
        self.step_done = step

    # --- checkpoints ------------------------------------------------------------------------
    def state_dict(self, key: str) -> dict[str, Any]:
        return {"key": key, "step": self.step_done,
                "params": {k: v.detach().cpu() for k, v in self.params.items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "strategy": {k: v.cpu() if torch.is_tensor(v) else v for k, v in self.state.items()},
                "exposure": None if self.exposure is None else self.exposure.detach().cpu(),
                "exposure_opt": None if self.exposure_opt is None else self.exposure_opt.state_dict(),
                "views": self.views.get_state(), "rng": checkpoint.rng_state(),
                "loss_ema": None if self.loss_ema is None else float(self.loss_ema),
                "mse_ema": None if self.mse_ema is None else float(self.mse_ema),
                "results": self.results}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.params = {k: torch.nn.Parameter(v.to(self.device)) for k, v in data["params"].items()}
        self.optimizers = make_optimizers(self.params, self.scene_scale)
        for k, opt in self.optimizers.items():
            opt.load_state_dict(data["optimizers"][k])
        self.state = {k: v.to(self.device) if torch.is_tensor(v) else v
                      for k, v in data["strategy"].items()}
        if self.exposure is not None and data.get("exposure") is not None:
            with torch.no_grad():
                self.exposure.copy_(data["exposure"].to(self.device))
            self.exposure_opt.load_state_dict(data["exposure_opt"])
        self.views.set_state(data["views"])
        checkpoint.set_rng_state(data["rng"])
        if data["loss_ema"] is not None:
            self.loss_ema = torch.tensor(data["loss_ema"], device=self.device)
            self.mse_ema = torch.tensor(data["mse_ema"], device=self.device)
        self.results = data["results"]
        self.step_done = data["step"]


def train(scene: Scene, config: TrainConfig, out_dir: Path, work_dir: Path | None = None,
          report: Reporter | None = None, device: str = "cpu", key: str = "",
          init: dict[str, np.ndarray] | None = None) -> TrainResult:
    """Trains (or resumes) a 3DGS model of `scene`, from the SfM points or from the trained model
    `init` (raw Gaussians); gives what happened. See the module doc."""
    report = report or SilentReporter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    trainer = Trainer(scene, config, device, init)
    key = key or json.dumps(asdict(config), sort_keys=True)
    saved = checkpoint.load(work_dir, key) if work_dir is not None else None
    if saved is not None:
        trainer.load_state_dict(saved)
        report.log(f"resuming from the checkpoint at step {trainer.step_done} "
                   f"({trainer.num_gaussians} Gaussians)")
    start = trainer.step_done
    sched = trainer.schedule
    masks = "masked views, a random background each step" if scene.alphas is not None and \
        config.random_background else "masked views" if scene.alphas is not None else "opaque views"
    grow = (f"densify {sched.refine_start}–{sched.refine_stop} every {sched.refine_every}"
            if sched.refine_start < config.iterations else "no densification")
    start_from = "fine-tuning a trained model" if trainer.fine_tune else "from the SfM points"
    report.log(f"{len(trainer.train_ids)} train / {len(trainer.test_ids)} test views at "
               f"{trainer.width}×{trainer.height} ({masks}), {trainer.num_gaussians} Gaussians "
               f"{start_from}, {config.strategy} strategy, {trainer.backend} rasterizer on "
               f"{device}; {grow}"
               f"{f', opacity reset every {sched.reset_every}' if config.opacity_reset else ''}, "
               f"SH degree {config.sh_degree}")
    try:
        train_seconds = _loop(trainer, out_dir, work_dir, report, key)
        write_final(trainer, out_dir)
    except torch.OutOfMemoryError:
        n = trainer.num_gaussians
        del trainer  # free what can be freed before anyone reports
        raise OutOfMemory(oom_message(n, scene.size[0], scene.size[1], config)) from None
    return TrainResult(start, trainer.step_done, trainer.num_gaussians, train_seconds,
                       trainer.results, {k: v.detach().cpu().numpy() for k, v in trainer.params.items()})


def _loop(trainer: Trainer, out_dir: Path, work_dir: Path | None, report: Reporter,
          key: str) -> float:
    """Trains to the last iteration, evaluating and checkpointing; gives the seconds spent in
    optimisation steps."""
    config = trainer.config
    evals = set(config.eval_steps)
    window: deque[tuple[float, int]] = deque(maxlen=200)  # (time, step): it/s and ETA
    train_seconds = 0.0
    last_report = 0.0
    cuda = str(trainer.device).startswith("cuda")
    from ..viewer.live import LiveHook

    live = LiveHook.for_training(work_dir)  # snapshots only while a viewer asks (issue 17)
    while trainer.step_done < config.iterations:
        t0 = time.perf_counter()
        trainer.step()
        live.tick(trainer)
        step = trainer.step_done
        now = time.perf_counter()
        train_seconds += now - t0
        window.append((now, step))
        report.progress(step, config.iterations, "it")
        if now - last_report >= config.report_every or step == config.iterations:
            last_report = now
            _report_speed(report, trainer, window, config.iterations, cuda)
        paused = False
        if step in evals:
            evaluate(trainer, out_dir, report)
            paused = True
        if work_dir is not None and (step % config.checkpoint_every == 0 or step in evals) \
                and step < config.iterations:
            path = checkpoint.save(work_dir, trainer.state_dict(key))
            report.log(f"checkpoint at step {step}")
            report.metric("checkpoint", step, step)
            if hasattr(report, "artifact"):
                report.artifact(path, "checkpoint")
            paused = True
        if paused:  # the speed window covers training only
            window.clear()
    live.close()
    return train_seconds


def _report_speed(report: Reporter, trainer: Trainer, window: deque[tuple[float, int]],
                  total: int, cuda: bool) -> None:
    step = trainer.step_done
    report.metric("loss", float(trainer.loss_ema), step)
    report.metric("psnr", psnr_of_mse(float(trainer.mse_ema)), step)
    report.metric("num_gaussians", trainer.num_gaussians, step)
    if len(window) >= 2 and window[-1][0] > window[0][0]:
        its = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
        report.metric("its_per_s", its, step)
        report.metric("eta_s", (total - step) / its, step)
    if cuda:
        report.metric("peak_vram", torch.cuda.max_memory_allocated(), step)


@torch.no_grad()
def evaluate(trainer: Trainer, out_dir: Path, report: Reporter) -> dict[str, Any]:
    """Renders the test views (metrics) and train views at this step into test/ and train/.

    PSNR/SSIM are over the whole frame against the view over the evaluation background (valid
    pixels only); with masks, `object_psnr` is over the object's pixels alone, against the
    original picture there.
    """
    from .._media import write_image

    step = trainer.step_done
    names = trainer.scene.names
    views: dict[str, dict[str, float]] = {}
    for i in trainer.test_ids:
        rgb, _ = trainer.render(i)
        gt = trainer.target(i, trainer.background)
        rgb = rgb.clamp(0, 1)
        views[names[i]] = view_metrics(trainer, i, rgb, gt)
        folder = out_dir / "test" / f"ours_{step}"
        write_image(folder / "renders" / _png(names[i]), _to_uint8(rgb))
        write_image(folder / "gt" / _png(names[i]), _to_uint8(gt))
    for i in trainer.train_ids:
        rgb, _ = trainer.render(i)
        write_image(out_dir / "train" / f"ours_{step}" / "renders" / _png(names[i]), _to_uint8(rgb))
    entry: dict[str, Any] = {"step": step, "num_gaussians": trainer.num_gaussians}
    if views:
        for key in ("psnr", "ssim", "object_psnr"):
            values = [v[key] for v in views.values() if key in v]
            if values:
                entry[key] = float(np.mean(values))
        report.metric("eval_psnr", entry["psnr"], step)
        report.metric("eval_ssim", entry["ssim"], step)
        extra = ""
        if "object_psnr" in entry:
            report.metric("eval_object_psnr", entry["object_psnr"], step)
            extra = f", object PSNR {entry['object_psnr']:.2f} dB"
        report.log(f"step {step}: test PSNR {entry['psnr']:.2f} dB, SSIM {entry['ssim']:.4f}{extra} "
                   f"({len(views)} views, {trainer.num_gaussians} Gaussians)")
    entry["views"] = views
    trainer.results[f"ours_{step}"] = entry
    _write_json(out_dir / "results.json", {
        "test_views": [names[i] for i in trainer.test_ids],
        "train_views": [names[i] for i in trainer.train_ids],
        "metrics": ("psnr/ssim: whole frame over the evaluation background (valid pixels); "
                    "object_psnr: the object's pixels (mask > 0.5) against the original picture"),
        "lpips": "not computed (no LPIPS weights in this install)",
        "evaluations": trainer.results})
    write_ply(out_dir / "point_cloud" / f"iteration_{step}" / "point_cloud.ply",
              {k: v.detach().cpu().numpy() for k, v in trainer.params.items()})
    return entry


def view_metrics(trainer: Trainer, view: int, rgb: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
    """Gives PSNR/SSIM of one render [1, H, W, 3] against its target, plus the object's PSNR."""
    valid = None if trainer.valid is None else trainer.valid[view:view + 1]
    out = {"psnr": psnr(rgb, gt, valid), "ssim": float(ssim(rgb, gt, valid))}
    if trainer.alphas is not None:
        inside = trainer.alphas[view:view + 1] > 127
        if valid is not None:
            inside = inside & valid
        if bool(inside.any()):
            out["object_psnr"] = psnr(rgb, gt, inside)
    return out


@torch.no_grad()
def write_final(trainer: Trainer, out_dir: Path) -> None:
    """Writes `renders_{iterations}/`: every view, train and test, in frame order."""
    from .._media import write_image

    folder = out_dir / f"renders_{trainer.config.iterations}"
    for i, name in enumerate(trainer.scene.names):
        rgb, _ = trainer.render(i)
        write_image(folder / _png(name), _to_uint8(rgb))


def _png(name: str) -> str:
    return Path(name).stem + ".png"


def _to_uint8(rgb: torch.Tensor) -> np.ndarray:
    return (rgb[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def oom_message(num_gaussians: int, width: int, height: int, config: TrainConfig) -> str:
    """Gives the one-line explanation of a CUDA out-of-memory error with the knobs that help."""
    cap = (f"lower splat.max_gaussians (now {config.max_gaussians})" if config.strategy == "mcmc"
           else "use splat.strategy = 'mcmc' with a splat.max_gaussians cap")
    return (f"GPU out of memory with {num_gaussians} Gaussians at {width}×{height} px; "
            f"raise splat.downscale, {cap}, or set splat.packed = true (or run.parallel_stages = "
            "1 if another stage shared the GPU)")


__all__ = ["OutOfMemory", "TrainConfig", "TrainResult", "Trainer", "evaluate", "train"]
