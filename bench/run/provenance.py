"""What a result must say about how it was made: machine, math backends, launch, and origin.

Numbers of float32 kernels differ in the last digits between CPUs (AVX2 vs AVX-512 reductions,
oneDNN paths) and between GPUs; results.json records what could explain such a difference.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

#: x86-64 micro-architecture levels by the instruction-set flags that define them (highest first).
_LEVELS = [("x86-64-v4", {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}),
           ("x86-64-v3", {"avx2", "fma", "bmi2", "movbe"}),
           ("x86-64-v2", {"sse4_2", "popcnt", "ssse3"})]
_LAUNCHERS = ("accelerate", "torch.distributed.run", "torchrun", "deepspeed")


def git_state() -> tuple[str | None, bool | None]:
    """(short sha, dirty) of the checkout this package runs from, or (None, None) outside git."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=7", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
        return sha, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def cpu_info() -> dict[str, Any]:
    """CPU model, x86-64 level, the vector flags that matter for float kernels, and core count."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    level = next((name for name, needed in _LEVELS if needed <= flags), "x86-64" if flags else None)
    vector = sorted(f for f in flags if f.startswith(("avx", "fma", "amx", "sse4")) or f in ("f16c", "neon"))
    return {"model": model, "machine": platform.machine(), "isa_level": level, "vector_flags": vector,
            "cores": os.cpu_count()}


def math_backends() -> dict[str, Any]:
    """torch's numerical settings and the kernels it dispatches to on this machine."""
    import torch

    out: dict[str, Any] = {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(), "mkl": torch.backends.mkl.is_available(),
        "threads": torch.get_num_threads(), "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
    if torch.cuda.is_available():
        out.update({"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                    "cudnn_deterministic": torch.backends.cudnn.deterministic,
                    "cudnn_benchmark": torch.backends.cudnn.benchmark,
                    "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                    "tf32_cudnn": torch.backends.cudnn.allow_tf32,
                    "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]})
    return out


def launch_command() -> str | None:
    """The launcher's command line (``accelerate launch ...``, ``torchrun ...``) when one started us."""
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return None
    words = [w for w in raw.decode(errors="replace").split("\0") if w]
    if not any(any(name in w for name in _LAUNCHERS) for w in words[:4]):
        return None
    return " ".join([Path(words[0]).name, *words[1:]]) if words else None


def command_line() -> str:
    """The bench command as typed (the launcher, if any, is recorded separately)."""
    prog = Path(sys.argv[0]).name
    prog = "bench" if prog in ("bench", "__main__.py", "-m") else prog
    return " ".join([prog, *sys.argv[1:]])


def origin(eval_only: bool, checkpoint: str | None, skipped: int, partial_reasons: list[str]) -> dict[str, Any]:
    """How a run was made, and whether a leaderboard may rank it (trained under the protocol, nothing skipped)."""
    kind = "eval_only" if eval_only else "warm_start" if checkpoint else "protocol"
    reasons = []
    if kind == "eval_only":
        reasons.append(f"eval-only: weights from {Path(str(checkpoint)).name}, not trained under this protocol")
    elif kind == "warm_start":
        reasons.append(f"warm start from {Path(str(checkpoint)).name}")
    if skipped:
        reasons.append(f"{skipped} image(s) skipped with --skip-bad-images")
    reasons += [f"partial: {r}" for r in partial_reasons]
    return {"kind": kind, "rankable": not reasons, "reasons": reasons}
