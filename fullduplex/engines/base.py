"""What every engine adapter shares: the missing-engine error, word timings, binary checks."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from dataclasses import dataclass


class EngineNotInstalled(RuntimeError):
    """A speech engine this call needs is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Word:
    """One word with its start and end time in seconds from the start of the audio."""

    word: str
    start: float
    end: float

    def shifted(self, dt: float) -> "Word":
        return Word(self.word, round(self.start + dt, 3), round(self.end + dt, 3))


def require_binary(name: str, install: str) -> str:
    """Path of an executable, or EngineNotInstalled telling how to get it."""
    path = shutil.which(name)
    if path is None:
        raise EngineNotInstalled(f"'{name}' is not installed; install it with: {install} "
                                 "(scripts/install.sh installs every engine)")
    return path


def require_module(module: str, install: str) -> None:
    """Raise EngineNotInstalled when a Python module cannot be imported."""
    if importlib.util.find_spec(module) is None:
        raise EngineNotInstalled(f"Python module '{module}' is not installed; install it with: {install} "
                                 "(or pip install -e '.[engines]')")


def run(cmd: list[str], stdin: str | None = None, timeout: float = 120.0) -> str:
    """Run an engine command; its stderr goes into the error when it fails. Returns stdout."""
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed (exit {p.returncode}): {p.stderr.strip()[-500:]}")
    return p.stdout
