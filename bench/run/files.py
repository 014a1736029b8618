"""Every file a run writes: under a temporary name renamed into place, one sentence when the disk refuses.

A full disk (ENOSPC), a quota, a file-size limit or a read-only file system shows up in whichever
write comes first: ``config.yaml``, the training state, the predictions, the checkpoint or
``results.json``. Libraries report it in their own words (torch: ``unexpected pos``, safetensors:
``IoError(Os { code: 28 ...``); here every such failure is a :class:`DiskError` naming the file, the
system's reason, the bytes needed where known and the bytes free. The half-written temporary file
is removed; the run directory keeps its ``INCOMPLETE`` marker, so ``--resume`` continues it once
there is room.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from bench.errors import BenchError

#: What to do after a failed write of a started run.
RESUME_HINT = "free space there (or choose another --out) and continue with `bench run --resume {run_dir}`"


class DiskError(BenchError):
    """A file of a run could not be written (disk full, quota, read-only file system, ...)."""


class _Recorder(io.RawIOBase):
    """A binary file that remembers the OSError of a failed write (torch reports only its own message)."""

    def __init__(self, fh: BinaryIO):
        super().__init__()
        self.fh, self.error, self.written = fh, None, 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        try:
            n = self.fh.write(data)
        except OSError as err:
            self.error = err
            raise
        self.written += n
        return n

    def flush(self) -> None:
        try:
            self.fh.flush()
        except OSError as err:
            self.error = err
            raise


def disk_error(path: Path, err: BaseException, need: int | None, hint: str) -> DiskError:
    """The one sentence for a failed write of ``path``."""
    reason = getattr(err, "strerror", None) or str(err).splitlines()[0][:200] or type(err).__name__
    try:
        free = f", {shutil.disk_usage(path.parent).free:,} bytes free there"
    except OSError:
        free = ""
    needed = f" (about {need:,} bytes needed{free})" if need else (f" ({free[2:]})" if free else "")
    return DiskError(f"Writing {path} failed: {reason}{needed}; {hint}.")


def write_with(path: Path, write: Callable[[BinaryIO], Any], need: int | None = None, hint: str = "") -> Path:
    """Write ``path`` through ``write(binary_file)`` atomically; any failure to store it is a DiskError."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    recorder = None
    try:
        with open(tmp, "wb") as fh:
            recorder = _Recorder(fh)
            write(recorder)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        cause = recorder.error if recorder is not None and recorder.error is not None else err
        if not isinstance(cause, OSError):
            raise
        tmp.unlink(missing_ok=True)  # before measuring what is free
        raise disk_error(path, cause, need, hint or "free space there and try again") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_file(path: Path, data: bytes | str, hint: str = "") -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` atomically; a failure is a DiskError with the bytes needed."""
    blob = data.encode("utf-8") if isinstance(data, str) else data
    return write_with(path, lambda fh: fh.write(blob), len(blob), hint)


def make_dir(path: Path, hint: str = "") -> Path:
    """``mkdir -p`` with the same one-sentence error as a failed write."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise disk_error(Path(path), err, None, hint or "free space there and try again") from None
    return Path(path)


def tensor_bytes(obj: Any) -> int:
    """Bytes held by the tensors in ``obj`` (nested dicts, lists, tuples): a lower bound of its file size."""
    if hasattr(obj, "nbytes") and hasattr(obj, "dtype"):
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0
