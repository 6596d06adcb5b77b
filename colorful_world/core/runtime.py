"""Device, precision and data-parallel set-up, chosen once and passed down."""

import contextlib
import os
import signal
import threading
from dataclasses import dataclass

import torch
import torch.distributed as dist

from colorful_world.io.errors import ConfigError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full float32
    rank: int = 0
    world_size: int = 1
    precision_reason: str = ""  # why this precision: printed at start, logged in metrics.jsonl

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


def pick_device(index: int = 0) -> torch.device:
    """CUDA > MPS > CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", index)
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}  # and "auto"


def choose_precision(device: torch.device, requested: str = "auto") -> tuple[torch.dtype | None, str]:
    """(the autocast dtype, None for float32; the reason). Auto: bf16 only where the GPU computes
    it natively (compute capability 8.0 and up: A100, L4, H100), fp16 with a grad scaler on older
    GPUs such as Colab's T4 (7.5), float32 on the CPU and MPS. Not `torch.cuda.is_bf16_supported()`:
    since PyTorch 2.3 it answers True on a T4 too, where bf16 is emulated, slow, and lacks kernels."""
    if requested != "auto":
        if requested not in PRECISIONS:
            raise ConfigError(f"precision must be auto or one of {', '.join(PRECISIONS)}, not {requested!r}")
        return PRECISIONS[requested], f"{requested}, as asked (--precision {requested})"
    if device.type != "cuda":
        return None, f"fp32: autocast brings no speed on {device.type.upper()}"
    major, minor = torch.cuda.get_device_capability(device)
    gpu = f"{torch.cuda.get_device_name(device)} (compute capability {major}.{minor})"
    if major >= 8:
        return torch.bfloat16, f"bf16: {gpu} computes it natively"
    return torch.float16, f"fp16 with a grad scaler: {gpu} has no native bf16"


def local(device: torch.device | None = None, precision: str = "auto") -> Runtime:
    """One process on `device` (default: the best one here), with its precision."""
    device = device or pick_device()
    amp_dtype, reason = choose_precision(device, precision)
    return Runtime(device, amp_dtype, precision_reason=reason)


def setup(precision: str = "auto") -> Runtime:
    """Single process, or one rank of a `torchrun` job (nccl on GPUs, gloo on CPUs)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return local(precision=precision)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    amp_dtype, reason = choose_precision(device, precision)
    return Runtime(device, amp_dtype, dist.get_rank(), world_size, reason)


def teardown(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def agree(flag: bool, runtime: Runtime) -> bool:
    """Rank 0's flag on every rank, so that all of them stop at the same step."""
    if not runtime.distributed:
        return flag
    shared = torch.tensor([float(flag)], device=runtime.device)
    dist.broadcast(shared, src=0)
    return bool(shared.item())


def barrier(runtime: Runtime) -> None:
    if runtime.distributed:
        dist.barrier()


class GracefulStop:
    """Ctrl-C, a notebook's interrupt or SIGTERM ends a run at the next step boundary, so the
    checkpoint written then is exact. A second signal stops at once. Not under DDP, where the
    ranks could see the signal at different steps and wait on each other forever."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous: dict = {}

    def __enter__(self) -> "GracefulStop":
        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._request)
        return self

    def _request(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step, with a checkpoint (signal again to stop at once)", flush=True)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
