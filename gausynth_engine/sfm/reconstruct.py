"""Gives a COLMAP reconstruction of ordered frames: features, cyclic pairs, mapping, retry.

Turn-arounds close on themselves, so "sequential" pairs each frame with its next `overlap`
frames *modulo the count* (the last frames meet the first ones) plus frames at power-of-two
distances, which also ties rings of a multi-height capture together. No vocabulary tree needed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._stage import StageError
from .bridges import InBetween, keep_only, write_bridges

MIN_IMAGES = 3


@dataclass(frozen=True)
class SfmOptions:
    """How hard to look for structure; the defaults are the stage's preset defaults."""

    matcher: str = "sequential"  # "sequential" (cyclic window) or "exhaustive"
    mapper: str = "incremental"  # "incremental" (COLMAP) or "global" (GLOMAP)
    overlap: int = 10  # frames after each frame that it is matched with (sequential)
    max_image_size: int = 0  # px, longest side SIFT sees; 0 = the frames' own size
    max_features: int = 4096  # per image (CPU matching costs grow with its square)
    peak_threshold: float = 0.0  # SIFT's contrast threshold; 0 = chosen from three probe frames
    guided: str = "retry"  # re-match along verified geometry: "always", "retry" (weak pairs and
    # bridges to left-out frames, only when frames are left out) or "never"
    weak_inliers: int = 100  # a pair with fewer verified matches is re-matched guided in the retry
    camera_model: str = "SIMPLE_RADIAL"
    single_camera: bool = True  # all frames share one camera (a video)
    focal_factor: float = 1.2  # initial focal length = factor × longest side (no EXIF in videos)
    focal_length_px: float = 0.0  # known focal length in the frames' pixels; 0 = unknown
    fix_focal_length: bool = False  # keep the known focal length as it is (else refine it)
    refine_principal_point: bool = False  # let bundle adjustment move the principal point
    masks: Path | None = None  # COLMAP feature masks (<name>.png, black = no features)
    device: str = "auto"  # SIFT extraction and matching: "auto", "cuda" or "cpu"
    retry: bool = True  # when too few register: bridge pairs to the left-out frames, looser mapper
    seed: int = 0


@dataclass
class SfmResult:
    """The chosen model and what it cost."""

    reconstruction: Any  # pycolmap.Reconstruction
    image_names: list[str]  # every frame offered, in order
    attempts: list[dict[str, Any]]  # per mapping: pairs matched so far, mapper, registered, kept
    device: str = "cpu"  # where SIFT ran
    peak_threshold: float = 0.0  # the SIFT contrast threshold used

    @property
    def registered(self) -> int:
        return self.reconstruction.num_reg_images()

    @property
    def fraction(self) -> float:
        return self.registered / len(self.image_names)

    @property
    def mapper(self) -> str:
        """Gives the mapping attempt that made the kept model, e.g. 'global (fallback)'."""
        return next((a["mapper"] for a in self.attempts if a.get("kept")), "")

    def stats(self) -> dict[str, Any]:
        """Gives registered/total, 3D points, mean reprojection error (px), mean track length."""
        rec = self.reconstruction
        return {"registered": self.registered, "total": len(self.image_names),
                "registered_fraction": round(self.fraction, 4),
                "points3d": rec.num_points3D(),
                "mean_reprojection_error_px": round(float(rec.compute_mean_reprojection_error()), 4),
                "mean_track_length": round(float(rec.compute_mean_track_length()), 3)}


Progress = Callable[[str, int, int], None]  # (phase, value, total)


def check_frames(images: Path, single_camera: bool = True) -> tuple[list[str], tuple[int, int]]:
    """Gives the frame names SfM can use and their size (w, h), or raises StageError saying why
    the folder cannot work."""
    import cv2
    from PIL import Image

    from .._media import list_images

    if not Path(images).is_dir():
        raise StageError(f"{images}: no such folder of frames (run preprocess first)")
    files = list_images(images)
    if not files:
        raise StageError(f"{images}: the folder holds no frames; SfM needs at least {MIN_IMAGES}")
    if len(files) < MIN_IMAGES:
        raise StageError(f"{images}: {len(files)} frame(s); SfM needs at least {MIN_IMAGES} "
                         "(raise preprocess.num_frames)")
    sizes = []
    for f in files:
        try:
            with Image.open(f) as im:
                sizes.append(im.size)
        except OSError as e:
            raise StageError(f"{f}: not a readable image ({e})") from None
    odd = next((f for f, s in zip(files, sizes, strict=True) if s != sizes[0]), None)
    if single_camera and odd is not None:
        raise StageError(f"{odd}: {sizes[files.index(odd)][0]}×{sizes[files.index(odd)][1]} px, "
                         f"but {files[0].name} is {sizes[0][0]}×{sizes[0][1]}; one shared camera "
                         "needs frames of one size (or set sfm.single_camera = false)")
    # Identical frames match perfectly and triangulate nothing: say so instead of a vague failure.
    small = [cv2.resize(cv2.imread(str(f), cv2.IMREAD_REDUCED_GRAYSCALE_2), (64, 64),
                        interpolation=cv2.INTER_AREA).astype(np.float32) for f in files]
    distinct = 1 + sum(np.abs(a - b).mean() > 0.5 for a, b in zip(small, small[1:], strict=False))
    if distinct < MIN_IMAGES:
        raise StageError(f"{images}: the {len(files)} frames are (nearly) identical ({distinct} "
                         "distinct); SfM needs a camera that moves around the object")
    return [f.name for f in files], sizes[0]


def cyclic_pairs(count: int, overlap: int) -> list[tuple[int, int]]:
    """Gives index pairs (i, j): each frame with its next `overlap` frames and those 2^k ahead,
    wrapping around so the end of the turn-around meets its start."""
    pairs: set[tuple[int, int]] = set()
    steps = set(range(1, overlap + 1)) | {2**k for k in range(count.bit_length())}
    for i in range(count):
        for d in steps:
            if d >= count:
                continue
            j = (i + d) % count
            if i != j:
                pairs.add((min(i, j), max(i, j)))
    return sorted(pairs)


def reconstruct(images: Path, work: Path, options: SfmOptions = SfmOptions(),
                progress: Progress | None = None, log: Callable[..., None] | None = None,
                in_between: InBetween | None = None) -> SfmResult:
    """Gives the largest reconstruction of the frames in `images`; `work` gets database.db.

    The first pass is cheap: plain matching of the cyclic pairs (or all pairs), one mapping.
    Only when frames are left out and `retry` is on, each step only while some still are: the
    source's frames between the sampled ones (`in_between`, when given) join in, matched in loop
    order with their neighbours, and mapping runs again; the pairs with few verified matches are
    matched again along their geometry (guided) and mapping runs again, registering more loosely;
    the frames left out are matched (guided) against frames spread over the whole turn-around
    and mapping runs again from COLMAP's strict initial pair, then a relaxed one, then globally.
    The model with the most sampled frames wins; borrowed frames leave it.
    """
    import pycolmap

    from .features import COLMAP_PEAK_THRESHOLD, choose_peak_threshold, extract, sift_device

    names, size = check_frames(images, options.single_camera)
    progress = progress or (lambda phase, value, total: None)
    log = log or (lambda message, level="info": None)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    database = work / "database.db"
    database.unlink(missing_ok=True)
    pycolmap.set_random_seed(options.seed)
    device = sift_device(options.device, log)
    on = "CUDA" if device != pycolmap.Device.cpu else "CPU"
    attempts: list[dict[str, Any]] = []
    wanted = set(names)

    started = _clock()
    if options.peak_threshold <= 0:
        chosen, counts = choose_peak_threshold(images, names, options, size, options.masks, device, work)
        options = replace(options, peak_threshold=chosen)
        why = "COLMAP's default" if chosen == COLMAP_PEAK_THRESHOLD else "for soft, low-texture frames"
        log(f"SIFT contrast threshold {chosen:g} ({why}): three probe frames hold "
            f"{min(counts)}–{max(counts)} features at COLMAP's 0.0067")
    progress("features", 0, len(names))
    extract(database, images, names, options, size, options.masks, device)
    progress("features", len(names), len(names))
    log(f"features ({on}, {size[0]}×{size[1]} px{', masked' if options.masks else ''}): "
        f"{_since(started)}")

    started = _clock()
    count = len(names)
    exhaustive = options.matcher == "exhaustive"
    if exhaustive:
        tried = {(i, j) for i in range(count) for j in range(i + 1, count)}
    else:
        tried = set(cyclic_pairs(count, options.overlap))
    _match(database, work, names, sorted(tried), exhaustive, options.guided == "always", device, options.seed)
    log(f"matching ({options.matcher}, {len(tried)} pairs, "
        f"{'guided' if options.guided == 'always' else 'plain'}): {_since(started)}")

    folder, every, borrowed = Path(images), names, 0

    def attempt(opts: SfmOptions, incremental: Any, label: str, pairs: int, guided: int) -> Any:
        started = _clock()
        model = _map(database, folder, work, opts, incremental, len(every), progress, log, wanted)
        attempts.append({"pairs": pairs, "guided_pairs": guided, "mapper": label,
                         "bridge_frames": borrowed, "registered": posed(model, wanted),
                         "seconds": round(_clock()[0] - started[0], 2), "kept": False})
        return model

    def better(model: Any, than: Any) -> bool:
        return model is not None and (than is None or posed(model, wanted) > posed(than, wanted))

    best = attempt(options, _incremental(options), options.mapper, len(tried), 0)
    best_at = 0
    chosen = in_between.choose() if in_between is not None and options.retry else []
    if chosen and posed(best, wanted) < count:
        log(f"only {posed(best, wanted)}/{count} frames registered; borrowing {len(chosen)} frames "
            "of the source between them to link them, then mapping again")
        started = _clock()
        folder = work / "frames"
        bridges = write_bridges(in_between, chosen, names, images, folder, options.masks)
        extract(database, folder, bridges, options, size, options.masks, device)
        where = dict(zip(names, in_between.positions, strict=True)) | dict(
            zip(bridges, chosen, strict=True))
        every = sorted(names + bridges, key=where.__getitem__)
        at = [every.index(n) for n in names]
        tried = {(min(at[i], at[j]), max(at[i], at[j])) for i, j in tried}
        total = len(every)
        loop = ({(i, j) for i in range(total) for j in range(i + 1, total)} if exhaustive
                else set(cyclic_pairs(total, options.overlap)))
        new = sorted(loop - tried)
        _match(database, work, every, new, False, options.guided == "always", device, options.seed)
        tried |= set(new)
        borrowed = len(bridges)
        log(f"features and matching of {len(bridges)} borrowed frames ({len(new)} pairs): "
            f"{_since(started)}")
        again = attempt(replace(options, mapper="incremental"),
                        _incremental(options, loose=True, start="strict"),
                        "incremental (borrowed frames)", len(tried), 0)
        if better(again, best):
            best, best_at = again, len(attempts) - 1
    guide = options.guided != "never"
    if options.retry and options.guided == "retry" and posed(best, wanted) < count:
        # Most frames are left out for want of matches in pairs that do overlap: matched again
        # along their verified geometry, the weak pairs alone joined plush-dog's five fragments
        # (61 → 102 frames) for a quarter of the cost of matching every left-out frame too.
        weak = weak_pairs(database, every, tried, options.weak_inliers)
        if weak:
            log(f"only {posed(best, wanted)}/{count} frames registered; retrying: {len(weak)} weak "
                "pairs again (guided), then mapping again")
            started = _clock()
            _forget(database, every, weak)
            _match(database, work, every, weak, False, True, device, options.seed)
            log(f"matching (weak pairs, {len(weak)} pairs): {_since(started)}")
            # Mapping costs a fraction of the wide retry's matching: both starts before it.
            for start in ("strict", "relaxed"):
                again = attempt(replace(options, mapper="incremental"),
                                _incremental(options, loose=True, start=start),
                                f"incremental (weak pairs again, {start} start)", len(tried),
                                len(weak))
                if better(again, best):
                    best, best_at = again, len(attempts) - 1
                if posed(best, wanted) == count:
                    break
    if options.retry and posed(best, wanted) < count:
        got = posed(best, wanted)
        registered = {im.name for im in best.images.values() if im.has_pose} if best else set()
        extra = bridge_pairs(every, registered, tried, needed=wanted)
        log(f"only {got}/{count} frames registered; retrying: {len(extra)} more pairs between the "
            f"frames left out and the model{' (guided)' if guide else ''}, then mapping again")
        started = _clock()
        _match(database, work, every, extra, False, guide, device, options.seed)
        log(f"matching (retry, {len(extra)} pairs): {_since(started)}")
        tried |= set(extra)
        pairs, guided = len(tried), len(extra) if guide else 0
        # A relaxed start can split a model into fragments, a strict one finds no start on soft
        # textures: try COLMAP's strict start first, then the relaxed one, both registering loosely.
        for start in ("strict", "relaxed"):
            again = attempt(replace(options, mapper="incremental"),
                            _incremental(options, loose=True, start=start),
                            f"incremental ({start} start)", pairs, guided)
            if better(again, best):
                best, best_at = again, len(attempts) - 1
            if posed(best, wanted) == count:
                break
        if options.mapper == "incremental" and posed(best, wanted) < count:
            # Incremental mapping can stall on a bad start (a few frames, or matches between
            # frames nothing explains); global mapping sees every pair at once.
            again = attempt(replace(options, mapper="global"), None, "global (fallback)", pairs,
                            guided)
            if better(again, best):
                best, best_at = again, len(attempts) - 1
    (work / "pairs.txt").unlink(missing_ok=True)
    if posed(best, wanted) == 0:
        raise StageError(f"{images}: SfM found no model in {count} frames (no image pair "
                         "with enough matched features and parallax); is the object textured "
                         "and does the camera move around it?")
    attempts[best_at]["kept"] = True
    if len(every) > count:
        best = keep_only(best, wanted)
    return SfmResult(best, names, attempts, device="cuda" if on == "CUDA" else "cpu",
                     peak_threshold=options.peak_threshold)


def posed(model: Any, names: set[str]) -> int:
    """Gives how many of the frames named have a pose in the model (0 for no model)."""
    if model is None:
        return 0
    return sum(1 for im in model.images.values() if im.has_pose and im.name in names)


def weak_pairs(database: Path, names: list[str], tried: set[tuple[int, int]], below: int
               ) -> list[tuple[int, int]]:
    """Gives the matched index pairs whose verified geometry holds fewer than `below` matches
    (but some: guided matching needs a geometry to follow)."""
    import pycolmap

    with pycolmap.Database.open(database) as db:
        index = {im.image_id: names.index(im.name) for im in db.read_all_images()}
        pair_ids, inliers = db.read_two_view_geometry_num_inliers()
    weak = set()
    for pair_id, n in zip(pair_ids, inliers, strict=True):
        if 0 < n < below:
            a, b = (index[i] for i in pycolmap.pair_id_to_image_pair(pair_id))
            weak.add((min(a, b), max(a, b)))
    return sorted(weak & tried)


def _forget(database: Path, names: list[str], pairs: list[tuple[int, int]]) -> None:
    """Deletes the matches of `pairs` so that the matcher computes them again."""
    import pycolmap

    if not pairs:
        return
    with pycolmap.Database.open(database) as db:
        ids = {im.name: im.image_id for im in db.read_all_images()}
        for i, j in pairs:
            db.delete_matches(ids[names[i]], ids[names[j]])
            db.delete_two_view_geometry(ids[names[i]], ids[names[j]])


def bridge_pairs(names: list[str], registered: set[str], tried: set[tuple[int, int]],
                 budget: int = 1500, needed: set[str] | None = None) -> list[tuple[int, int]]:
    """Gives new index pairs linking each frame left out of the model (of those `needed`, if
    given) to frames spread evenly over the whole turn-around (at most about `budget` pairs)."""
    left = [i for i, n in enumerate(names)
            if n not in registered and (needed is None or n in needed)]
    if not left:
        return []
    anchors_wanted = max(8, budget // len(left))
    step = max(1, len(names) // anchors_wanted)
    anchors = range(0, len(names), step)
    pairs = {(min(i, a), max(i, a)) for i in left for a in anchors if i != a}
    return sorted(pairs - tried)


def _verification(seed: int) -> Any:
    """Gives two-view verification options whose RANSAC is seeded: the same matches verify the
    same way whichever thread takes the pair (COLMAP's default seed, -1, draws a new one each
    time: 7 of 16 plush-dog pairs verified differently from run to run, none seeded). The CPU
    matcher itself still varies on a loaded machine (seen: one frame's pairs off by 1–24
    matches), so SfM is steadier, not bit-reproducible."""
    import pycolmap

    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = seed
    return verification


def _match(database: Path, work: Path, names: list[str], pairs: list[tuple[int, int]],
           exhaustive: bool, guided: bool, device: Any, seed: int = 0) -> None:
    """Matches features of the given pairs (guided: a second pass along the found geometry)."""
    import pycolmap

    matching = pycolmap.FeatureMatchingOptions()
    matching.guided_matching = guided
    verification = _verification(seed)
    if exhaustive:
        pycolmap.match_exhaustive(database, matching_options=matching,
                                  verification_options=verification, device=device)
        return
    if not pairs:
        return
    pair_file = work / "pairs.txt"
    pair_file.write_text("".join(f"{names[i]} {names[j]}\n" for i, j in pairs))
    pycolmap.match_image_pairs(database, matching_options=matching,
                               pairing_options=pycolmap.ImportedPairingOptions(
                                   match_list_path=str(pair_file)),
                               verification_options=verification, device=device)


def _map(database: Path, images: Path, work: Path, opts: SfmOptions, incremental: Any,
         total: int, progress: Progress, log: Callable[..., None], wanted: set[str]) -> Any:
    """Gives the model the mapper finds with the most of the `wanted` frames, or None."""
    import pycolmap

    started = _clock()
    # Borrowed frames count in the mapper's total: say so, or "3/48" reads as 48 wanted frames.
    phase = "mapping" if total <= len(wanted) else "mapping with borrowed"
    maps = work / "maps"
    shutil.rmtree(maps, ignore_errors=True)
    maps.mkdir()
    if opts.mapper == "global":
        progress(phase, 0, total)
        glob = pycolmap.GlobalPipelineOptions()
        glob.random_seed = opts.seed
        ba = glob.mapper.bundle_adjustment
        ba.refine_focal_length = not (opts.fix_focal_length and opts.focal_length_px > 0)
        ba.refine_principal_point = opts.refine_principal_point
        models = pycolmap.global_mapping(database, images, maps, options=glob)
        progress(phase, max((m.num_reg_images() for m in models.values()), default=0), total)
    else:
        models = pycolmap.incremental_mapping(database, images, maps, options=incremental,
                                              **_callbacks(progress, total, phase))
    shutil.rmtree(maps, ignore_errors=True)
    log(f"mapping ({opts.mapper}): {_since(started)}, "
        f"models: {[m.num_reg_images() for m in models.values()]}")
    if not models:
        return None
    return max(models.values(), key=lambda m: (posed(m, wanted), m.num_points3D()))


def _incremental(opts: SfmOptions, loose: bool = False, start: str = "relaxed") -> Any:
    """Gives incremental-mapper options relaxed for low-texture turn-arounds: a relaxed start
    (initial pair) or COLMAP's strict one, and looser registration for the retry."""
    import pycolmap

    o = pycolmap.IncrementalPipelineOptions()
    o.random_seed = opts.seed
    # What 3DGS's convert.py sets: global bundle adjustment stops once the cost changes by less
    # than 1e-6 (relative) instead of running its iterations out.
    o.ba_global_function_tolerance = 1e-6
    o.min_model_size = 3
    o.min_num_matches = 10 if loose else 15
    if start == "relaxed":
        o.mapper.init_min_num_inliers = 30 if loose else 50
        o.mapper.init_min_tri_angle = 2.0 if loose else 4.0
    o.mapper.abs_pose_min_num_inliers = 10 if loose else 15
    o.mapper.abs_pose_min_inlier_ratio = 0.1 if loose else 0.15
    o.mapper.max_reg_trials = 8 if loose else 5
    o.mapper.init_max_reg_trials = 4
    if opts.fix_focal_length and opts.focal_length_px > 0:
        o.ba_refine_focal_length = False
        o.mapper.abs_pose_refine_focal_length = False
    o.ba_refine_principal_point = opts.refine_principal_point
    return o


def _callbacks(progress: Progress, total: int, phase: str = "mapping") -> dict[str, Any]:
    """Gives pycolmap's mapping callbacks that count registered frames for the progress bar."""
    count = [0]

    def first_pair() -> None:
        count[0] = 2
        progress(phase, count[0], total)

    def next_image() -> None:
        count[0] = min(total, count[0] + 1)
        progress(phase, count[0], total)

    return {"initial_image_pair_callback": first_pair, "next_image_callback": next_image}


def _clock() -> tuple[float, float]:
    """Gives (wall, CPU) seconds now; CPU counts all of this process's threads (COLMAP's too)."""
    return time.monotonic(), time.process_time()


def _since(started: tuple[float, float]) -> str:
    wall, cpu = _clock()
    return f"{wall - started[0]:.1f} s (CPU {cpu - started[1]:.1f} s)"
