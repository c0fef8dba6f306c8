"""Where and with what a run executes: device choice, package versions, git revision (atomic files: safeio.files)."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("torch", "torchvision", "torch-fidelity", "numpy", "pillow", "scipy", "pandas", "pyyaml")


def resolve_device(requested: str) -> torch.device:
    """"auto" -> CUDA when present, else CPU; "cuda" without a GPU is an error, not a silent fallback."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(requested)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["cuda"] = torch.version.cuda or "none"
    return versions


def git_revision() -> str:
    """The project's git commit (with "+dirty" for uncommitted changes), or "unknown"."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
