"""Runs a convolutional ONNX graph (U²-Net and its kin) through PyTorch, on the GPU.

The device's onnxruntime has no CUDA provider, so rembg's models ran on the CPU there (~0.3 s a
frame for U²-Net, twice per frame: mask and blend). This reads the very same .onnx file (graph and
weights) and executes its nodes with torch operations. Only a small set of operators is known;
`supported()` says whether a graph uses nothing else, and callers keep onnxruntime otherwise.

`OnnxTorchSession` answers the three calls rembg makes on its onnxruntime session (`run`,
`get_inputs`, `get_providers`), so rembg's own pre- and post-processing stay exactly as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

KNOWN = frozenset({"Add", "Cast", "Concat", "Constant", "Conv", "Gather", "MaxPool", "Relu", "Resize",
                   "Shape", "Sigmoid", "Slice", "Unsqueeze"})


def unsupported(path: Path) -> list[str]:
    """Gives the operators of the graph in `path` that this runner does not execute (empty: all)."""
    import onnx

    return sorted({n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node} - KNOWN)


@dataclass(frozen=True)
class _Input:
    name: str  # what rembg reads as get_inputs()[0].name


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class OnnxTorchSession:
    """An ONNX graph's nodes as torch operations on `device`; fp32 like onnxruntime's CPU path."""

    def __init__(self, path: Path, device: str) -> None:
        import onnx
        import torch
        from onnx import numpy_helper

        model = onnx.load(str(path))
        missing = sorted({n.op_type for n in model.graph.node} - KNOWN)
        if missing:
            raise ValueError(f"{path}: operators {', '.join(missing)} are not run through torch")
        self.device = torch.device(device)
        self.nodes = [(n.op_type, list(n.input), list(n.output), _attrs(n)) for n in model.graph.node]
        self.weights = {t.name: self._tensor(numpy_helper.to_array(t)) for t in model.graph.initializer}
        inits = set(self.weights)
        self.inputs = [_Input(i.name) for i in model.graph.input if i.name not in inits]
        self.outputs = [o.name for o in model.graph.output]

    def _tensor(self, array: np.ndarray) -> Any:
        import torch

        t = torch.from_numpy(np.array(array))
        # Shapes and indices stay on the CPU (they steer the graph); values go to the device.
        return t if t.dtype in (torch.int64, torch.int32) else t.to(self.device)

    def get_inputs(self) -> list[_Input]:
        return self.inputs

    def get_providers(self) -> list[str]:
        return [f"torch-{self.device.type} (the ONNX graph through PyTorch)"]

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Gives the graph's outputs (all, or those named) for numpy inputs, as numpy arrays."""
        import torch

        values: dict[str, Any] = dict(self.weights)
        for name, array in feeds.items():
            values[name] = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
        tf32 = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False  # full fp32 convolutions, as onnxruntime computes them
        try:
            with torch.inference_mode():
                for op, ins, outs, attrs in self.nodes:
                    args = [values[i] if i else None for i in ins]
                    values[outs[0]] = getattr(self, f"_{op}")(args, attrs)
                return [values[n].float().cpu().numpy() for n in (output_names or self.outputs)]
        finally:
            torch.backends.cudnn.allow_tf32 = tf32

    # --- operators (ONNX semantics, opset 11–17) -------------------------------------------
    def _Conv(self, a: list, at: dict) -> Any:
        import torch.nn.functional as F

        x, w, b = a[0], a[1], a[2] if len(a) > 2 else None
        pads = list(at.get("pads", [0, 0, 0, 0]))
        half = len(pads) // 2
        if pads[:half] != pads[half:]:  # asymmetric: pad explicitly (torch pads both sides alike)
            x = F.pad(x, [p for k in reversed(range(half)) for p in (pads[k], pads[k + half])])
            pads = [0] * len(pads)
        return F.conv2d(x, w, b, stride=tuple(at.get("strides", [1, 1])), padding=tuple(pads[:half]),
                        dilation=tuple(at.get("dilations", [1, 1])), groups=at.get("group", 1))

    def _MaxPool(self, a: list, at: dict) -> Any:
        import torch.nn.functional as F

        pads = list(at.get("pads", [0, 0, 0, 0]))
        half = len(pads) // 2
        if pads[:half] != pads[half:]:
            raise ValueError("MaxPool with asymmetric pads is not run through torch")
        return F.max_pool2d(a[0], tuple(at["kernel_shape"]), stride=tuple(at.get("strides", at["kernel_shape"])),
                            padding=tuple(pads[:half]), dilation=tuple(at.get("dilations", [1, 1])),
                            ceil_mode=bool(at.get("ceil_mode", 0)))

    def _Resize(self, a: list, at: dict) -> Any:
        import torch.nn.functional as F

        x = a[0]
        sizes = a[3] if len(a) > 3 and a[3] is not None and a[3].numel() else None
        scales = a[2] if len(a) > 2 and a[2] is not None and a[2].numel() else None
        if sizes is not None:
            size = tuple(int(v) for v in sizes.tolist()[2:])
        elif scales is not None:
            size = tuple(int(np.floor(d * float(s))) for d, s in zip(x.shape[2:], scales.tolist()[2:], strict=True))
        else:
            raise ValueError("Resize without sizes or scales")
        mode = at.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        how = at.get("coordinate_transformation_mode", b"half_pixel")
        how = how.decode() if isinstance(how, bytes) else how
        if mode == "linear" and how in ("half_pixel", "pytorch_half_pixel"):
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        if mode == "linear" and how == "align_corners":
            return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        nearest = at.get("nearest_mode", b"round_prefer_floor")
        nearest = nearest.decode() if isinstance(nearest, bytes) else nearest
        if mode == "nearest" and how == "asymmetric" and nearest == "floor":
            return F.interpolate(x, size=size, mode="nearest")
        raise ValueError(f"Resize mode {mode!r} / {how!r} is not run through torch")

    def _Relu(self, a: list, at: dict) -> Any:
        return a[0].relu()

    def _Sigmoid(self, a: list, at: dict) -> Any:
        return a[0].sigmoid()

    def _Add(self, a: list, at: dict) -> Any:
        return a[0] + a[1]

    def _Concat(self, a: list, at: dict) -> Any:
        import torch

        return torch.cat(a, dim=at["axis"])

    def _Constant(self, a: list, at: dict) -> Any:
        from onnx import numpy_helper

        if "value" not in at:
            raise ValueError("Constant without a tensor value is not run through torch")
        return self._tensor(numpy_helper.to_array(at["value"]))

    def _Shape(self, a: list, at: dict) -> Any:
        import torch

        shape = list(a[0].shape)[at.get("start", 0): at.get("end")]
        return torch.tensor(shape, dtype=torch.int64)

    def _Gather(self, a: list, at: dict) -> Any:
        return a[0].index_select(at.get("axis", 0), a[1].reshape(-1).to(a[0].device)).reshape(
            *a[0].shape[: at.get("axis", 0)], *a[1].shape, *a[0].shape[at.get("axis", 0) + 1:])

    def _Unsqueeze(self, a: list, at: dict) -> Any:
        axes = at["axes"] if "axes" in at else a[1].tolist()
        x = a[0]
        for ax in sorted(int(v) for v in axes):
            x = x.unsqueeze(ax)
        return x

    def _Cast(self, a: list, at: dict) -> Any:
        import torch
        from onnx import TensorProto

        kinds = {TensorProto.FLOAT: torch.float32, TensorProto.INT64: torch.int64,
                 TensorProto.INT32: torch.int32, TensorProto.FLOAT16: torch.float16}
        if at["to"] not in kinds:
            raise ValueError(f"Cast to ONNX type {at['to']} is not run through torch")
        return a[0].to(kinds[at["to"]])

    def _Slice(self, a: list, at: dict) -> Any:
        x, starts, ends = a[0], a[1].tolist(), a[2].tolist()
        axes = a[3].tolist() if len(a) > 3 and a[3] is not None else list(range(len(starts)))
        steps = a[4].tolist() if len(a) > 4 and a[4] is not None else [1] * len(starts)
        index = [slice(None)] * x.dim()
        for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
            n = x.shape[ax]
            s, e = max(-n, min(n, s)), max(-n - 1, min(n, e))
            if st < 0:
                raise ValueError("Slice with negative steps is not run through torch")
            index[ax] = slice(s, e, st)
        return x[tuple(index)]
