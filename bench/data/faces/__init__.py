"""Face crops from the official video downloads: ``bench data faces LAYOUT VIDEO_ROOT --out DIR``.

``video`` reads sampled frames (PyAV, seeking), ``detect`` finds faces (dlib's HOG detector) and
optional landmarks, ``crop`` chooses the face and cuts the square crop, ``extract`` does one
video, ``layouts`` says where each dataset's videos are and where their frames go, ``run``
drives a dataset in parallel worker processes and resumes, ``report`` records what was dropped.
The output is the tree the indexers read, so ``bench data index LAYOUT DIR`` follows unchanged.
Names are imported lazily: ``bench data verify`` reads reports without loading PyAV or dlib. The
command-line arguments live in ``bench/cli/faces.py``.
"""

from importlib import import_module

_EXPORTS = {
    "Settings": "bench.data.faces.settings", "LAYOUTS": "bench.data.faces.layouts",
    "REPORT_NAME": "bench.data.faces.report", "describe": "bench.data.faces.report",
    "read_report": "bench.data.faces.report", "unfinished": "bench.data.faces.report", "Summary": "bench.data.faces.run",
    "extract_faces": "bench.data.faces.run", "format_summary": "bench.data.faces.run",
}

__all__ = ["LAYOUTS", "REPORT_NAME", "Settings", "Summary", "describe", "extract_faces", "format_summary",
           "read_report", "unfinished"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bench.data.faces' has no attribute {name!r}")
