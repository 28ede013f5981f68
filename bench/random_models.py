"""Random-weight models of the real architectures, saved where the engine's loaders read them.

Shared by the benches (reimagine, upscale, e2e). Nothing is downloaded: the work a stage does
depends on the architecture and sizes, not on the values of the weights.

- `save_diffusion(root, device, tiny)`: SD-XL base + canny ControlNet + IP-Adapter (plain SD-XL
  adapter) + its OpenCLIP ViT-bigG/14 image encoder, from the configs in bench/configs/, as
  `root/sdxl`, `root/controlnet`, `root/ip_adapter` (see tests/stages/tiny_models.py).
- `save_swin2sr(folder, device, tiny)`: Swin2SR ×4 with the configuration of
  caidas/swin2SR-realworld-sr-x4-64-bsrgan-psnr (embed 180, 6 × 6 blocks, nearest+conv).
- `export_u2net(path, tiny)`: U²-Net (Qin et al. 2020, the full 44 M-parameter model that rembg
  ships as u2net.onnx), written here from the published design, exported to ONNX.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _p in (HERE.parent, HERE.parent / "tests" / "stages"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

REALWORLD_X4 = dict(embed_dim=180, depths=[6] * 6, num_heads=[6] * 6, window_size=8, mlp_ratio=2.0,
                    upscale=4, upsampler="nearest+conv", img_range=1.0, resi_connection="1conv",
                    image_size=64)
TINY_X4 = dict(embed_dim=16, depths=[2, 2], num_heads=[2, 2], window_size=8, mlp_ratio=2.0, upscale=4,
               upsampler="nearest+conv", img_range=1.0, resi_connection="1conv", image_size=32)

# Parameter counts of the real models, to check that what was built is the real architecture:
# name -> (count, relative tolerance). Exact where the count is published; the ControlNet and the
# image encoder from their public fp16 files (≈2.50 GB and ≈3.69 GB, 2 bytes a parameter).
PUBLISHED = {
    "unet": (2_567_463_684, 0.001),  # SD-XL base UNet
    "vae": (83_653_863, 0.001),
    "text_encoder": (123_060_480, 0.001),  # CLIP ViT-L/14 text
    "text_encoder_2": (694_659_840, 0.001),  # OpenCLIP bigG/14 text (with projection)
    "controlnet": (1_250_000_000, 0.01),  # diffusers/controlnet-canny-sdxl-1.0
    "image_encoder": (1_845_000_000, 0.01),  # h94/IP-Adapter sdxl_models/image_encoder (ViT-bigG/14)
    "u2net": (44_009_869, 0.001),  # rembg's u2net.onnx (U²-Net full, 176 MB in fp32)
}


def count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def save_diffusion(root: Path, device: str = "cuda", tiny: bool = False) -> dict[str, Any]:
    """Saves SD-XL + ControlNet + IP-Adapter + image encoder under root; gives their folders.

    Weights are drawn on `device` (a GPU draws 6.5 B parameters in seconds) and saved in fp16
    there, fp32 on the CPU. Gives {"checkpoint", "controlnet", "ip_adapter": folder,
    "params": {part: count}}.
    """
    import torch
    from tiny_models import TINY as TINY_CONFIGS
    from tiny_models import save_random_models

    configs = TINY_CONFIGS if tiny else {p.stem: json.loads(p.read_text())
                                         for p in (HERE / "configs").glob("*.json")}
    dtype = torch.float16 if device == "cuda" else torch.float32
    folders = save_random_models(root, configs, dtype=dtype, device=device)
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"checkpoint": str(folders.checkpoint), "controlnet": str(folders.controlnet),
            "ip_adapter": str(folders.ip_adapter), "params": saved_counts(folders)}


def saved_counts(folders: Any) -> dict[str, int]:
    """Gives the parameter count of each saved part, read from its safetensors headers."""
    from safetensors import safe_open

    parts = {"unet": folders.checkpoint / "unet", "vae": folders.checkpoint / "vae",
             "text_encoder": folders.checkpoint / "text_encoder",
             "text_encoder_2": folders.checkpoint / "text_encoder_2", "controlnet": folders.controlnet,
             "image_encoder": folders.ip_adapter / "sdxl_models" / "image_encoder",
             "ip_adapter": folders.ip_adapter / "sdxl_models"}
    out = {}
    for name, folder in parts.items():
        total = 0
        for f in sorted(Path(folder).glob("*.safetensors")):
            with safe_open(str(f), "pt") as st:
                for key in st.keys():  # noqa: SIM118 - safe_open has no __iter__
                    n = 1
                    for d in st.get_slice(key).get_shape():
                        n *= d
                    total += n
        out[name] = total
    return out


def save_swin2sr(folder: Path, device: str = "cuda", tiny: bool = False) -> dict[str, Any]:
    """Saves a random Swin2SR ×4 (the real-world x4 architecture, or a tiny one) with its processor."""
    import torch
    from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution, Swin2SRImageProcessor

    torch.manual_seed(0)
    with torch.device(device):
        model = Swin2SRForImageSuperResolution(Swin2SRConfig(**(TINY_X4 if tiny else REALWORLD_X4)))
    model.save_pretrained(folder)
    Swin2SRImageProcessor().save_pretrained(folder)  # the model card's: rescale 1/255, pad to 8
    return {"folder": str(folder), "params": count(model)}


# --- U²-Net ----------------------------------------------------------------------------------
def u2net(width: float = 1.0) -> Any:
    """Gives U²-Net (Qin et al., "U²-Net: Going deeper with nested U-structure", 2020).

    width=1 is the full model of the paper's Table 1 (rembg's u2net.onnx, 44.0 M parameters);
    smaller widths scale every channel count (for CPU dry runs). Input [B, 3, H, W]; outputs
    the fused map d0 and the six side maps d1..d6, each [B, 1, H, W] after a sigmoid.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    def ch(c: int) -> int:
        return max(2, round(c * width))

    class ConvBnRelu(nn.Module):
        def __init__(self, cin: int, cout: int, dilation: int = 1) -> None:
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)
            self.bn = nn.BatchNorm2d(cout)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.relu(self.bn(self.conv(x)))

    def up_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=ref.shape[2:], mode="bilinear", align_corners=False)

    class RSU(nn.Module):
        """Residual U-block of height L: L-1 encoder levels (pooling between), a dilated bottom."""

        def __init__(self, height: int, cin: int, mid: int, cout: int) -> None:
            super().__init__()
            self.conv_in = ConvBnRelu(cin, cout)
            self.enc = nn.ModuleList([ConvBnRelu(cout, mid)] + [ConvBnRelu(mid, mid) for _ in range(height - 2)])
            self.bottom = ConvBnRelu(mid, mid, dilation=2)
            self.dec = nn.ModuleList([ConvBnRelu(2 * mid, mid) for _ in range(height - 2)]
                                     + [ConvBnRelu(2 * mid, cout)])
            self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            xin = self.conv_in(x)
            skips, h = [], xin
            for k, conv in enumerate(self.enc):
                h = conv(h if k == 0 else self.pool(h))
                skips.append(h)
            h = self.bottom(h)
            for conv, skip in zip(self.dec, reversed(skips), strict=True):
                h = conv(torch.cat([up_like(h, skip), skip], 1))
            return h + xin

    class RSU4F(nn.Module):
        """The dilated RSU of the low-resolution stages: no pooling, dilations 1, 2, 4, 8."""

        def __init__(self, cin: int, mid: int, cout: int) -> None:
            super().__init__()
            self.conv_in = ConvBnRelu(cin, cout)
            self.enc = nn.ModuleList([ConvBnRelu(cout, mid, 1), ConvBnRelu(mid, mid, 2),
                                      ConvBnRelu(mid, mid, 4)])
            self.bottom = ConvBnRelu(mid, mid, 8)
            self.dec = nn.ModuleList([ConvBnRelu(2 * mid, mid, 4), ConvBnRelu(2 * mid, mid, 2),
                                      ConvBnRelu(2 * mid, cout, 1)])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            xin = self.conv_in(x)
            skips, h = [], xin
            for conv in self.enc:
                h = conv(h)
                skips.append(h)
            h = self.bottom(h)
            for conv, skip in zip(self.dec, reversed(skips), strict=True):
                h = conv(torch.cat([h, skip], 1))
            return h + xin

    class U2Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = ch
            self.encoders = nn.ModuleList([
                RSU(7, 3, c(32), c(64)), RSU(6, c(64), c(32), c(128)), RSU(5, c(128), c(64), c(256)),
                RSU(4, c(256), c(128), c(512)), RSU4F(c(512), c(256), c(512)), RSU4F(c(512), c(256), c(512))])
            self.decoders = nn.ModuleList([  # stage 5d … 1d
                RSU4F(c(1024), c(256), c(512)), RSU(4, c(1024), c(128), c(256)), RSU(5, c(512), c(64), c(128)),
                RSU(6, c(256), c(32), c(64)), RSU(7, c(128), c(16), c(64))])
            self.sides = nn.ModuleList([nn.Conv2d(n, 1, 3, padding=1)
                                        for n in (c(64), c(64), c(128), c(256), c(512), c(512))])
            self.fuse = nn.Conv2d(6, 1, 1)
            self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            skips, h = [], x
            for k, enc in enumerate(self.encoders):
                h = enc(h if k == 0 else self.pool(h))
                skips.append(h)
            outs = [h]  # hx6, then hx5d … hx1d
            for dec, skip in zip(self.decoders, reversed(skips[:-1]), strict=True):
                h = dec(torch.cat([up_like(h, skip), skip], 1))
                outs.append(h)
            hd = outs[::-1]  # hx1d, hx2d, …, hx6
            d1 = self.sides[0](hd[0])
            side = [d1] + [up_like(self.sides[k](hd[k]), d1) for k in range(1, 6)]
            d0 = self.fuse(torch.cat(side, 1))
            return tuple(torch.sigmoid(d) for d in [d0, *side])

    return U2Net()


def export_u2net(path: Path, tiny: bool = False) -> dict[str, Any]:
    """Exports a random U²-Net to ONNX at rembg's input size (1×3×320×320); gives its facts.

    Named u2net.onnx, rembg opens it with its own u2net session (normalisation, 320² resize, the
    first output's first channel min-max normalised), exactly as the downloaded model.
    """
    import torch

    torch.manual_seed(0)
    model = u2net(0.125 if tiny else 1.0).eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (torch.zeros(1, 3, 320, 320),), str(path), dynamo=False,
                      input_names=["input.1"], output_names=[f"d{k}" for k in range(7)], opset_version=17)
    return {"path": str(path), "params": count(model), "megabytes": round(path.stat().st_size / 2**20, 1)}


def check_counts(counts: dict[str, int]) -> list[str]:
    """Gives one line per part whose parameter count is off the published one (empty: all real)."""
    bad = []
    for name, n in counts.items():
        if name in PUBLISHED:
            want, tol = PUBLISHED[name]
            if abs(n - want) > tol * want:
                bad.append(f"{name}: {n:,} parameters, the published model has {want:,}")
    return bad
