"""Where models run: one decision, made once at start-up, shared by every model.

CUDA when present (fp16: half the memory traffic and tensor-core matmuls, and CLIP/YOLO
embeddings are robust to it), CPU otherwise (fp32: CPUs have no fast fp16 matmul). The same
code runs on both; only this choice differs. Asking for CUDA on a machine without it is a
start-up error, never a silent fall back to a CPU that is 50x slower.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vision.errors import ModelError

DEVICE_PREFERENCES = ("auto", "cpu", "cuda", "cuda:N")
"""What ``pick_device`` accepts (``cuda:N`` names one GPU by index)."""


@dataclass(frozen=True)
class DeviceChoice:
    """A torch device, the dtype models run in there, and a human-readable ``name`` for logs.

    ``dtype`` is ``torch.float16`` on CUDA and ``torch.float32`` on CPU; inputs are converted
    to it on the device, outputs are returned as float32 numpy arrays whatever it is.
    """

    device: torch.device
    dtype: torch.dtype
    name: str

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"


def _cuda_choice(index: int) -> DeviceChoice:
    count = torch.cuda.device_count()
    if index >= count:
        raise ModelError(
            f"device cuda:{index} asked for, but this machine has {count} CUDA device(s); "
            f"use --device cuda:0..cuda:{count - 1}, or --device auto"
        )
    dev = torch.device("cuda", index)
    gpu = torch.cuda.get_device_name(index)
    return DeviceChoice(dev, torch.float16, f"cuda:{index} ({gpu}, fp16)")


def _cpu_choice() -> DeviceChoice:
    threads = torch.get_num_threads()
    return DeviceChoice(torch.device("cpu"), torch.float32, f"cpu ({threads} threads, fp32)")


def pick_device(preference: str = "auto") -> DeviceChoice:
    """Resolve ``preference`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) to a DeviceChoice.

    ``auto`` takes CUDA device 0 when CUDA is usable and the CPU otherwise. An explicit
    ``cuda`` without a usable CUDA device raises ModelError (the caller asked for speed it
    will not get); an unknown preference raises ModelError listing the accepted values.
    """
    pref = preference.strip().lower()
    if pref == "auto":
        return _cuda_choice(0) if torch.cuda.is_available() else _cpu_choice()
    if pref == "cpu":
        return _cpu_choice()
    if pref == "cuda" or pref.startswith("cuda:"):
        index_text = pref.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise ModelError(
                f"device {preference!r}: expected cuda:N with N a GPU index, e.g. cuda:0"
            )
        if not torch.cuda.is_available():
            raise ModelError(
                f"device {preference!r} asked for, but CUDA is not available here "
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
                "use --device cpu or --device auto"
            )
        return _cuda_choice(int(index_text))
    raise ModelError(f"unknown device {preference!r}: use one of {', '.join(DEVICE_PREFERENCES)}")
