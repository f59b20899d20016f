"""What made a benchmark figure: commit, package versions, CPU and machine load.

Every benchmark JSON carries ``machine_stamp()`` so a figure can be traced to the code and the CPU that
produced it (the CPU kind under this project changes between sessions).
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "transformers", "accelerate", "datasets", "tokenizers", "onnxruntime", "numpy")
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_description() -> dict:
    """Model name, logical CPUs usable by this process and the SIMD/matrix features that matter for speed."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", "x86_64", ""):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {"model": model, "cpus": len(os.sched_getaffinity(0)),
            "features": [f for f in CPU_FEATURES if f in flags]}


def git_commit() -> str:
    """The commit of the checkout the benchmark runs from, ``+dirty`` when files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine_stamp() -> dict:
    """Commit, package versions, CPU and the 1/5/15-minute load averages at the time of the call."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"commit": git_commit(), "python": platform.python_version(), "packages": versions,
            "cpu": cpu_description(), "load_average": [round(x, 2) for x in os.getloadavg()]}
