"""Install Dream Server from inside Blender: a virtual environment of the
add-on's own, PyTorch built for this machine, and the dream-renders wheel
that ships inside the add-on. Standard library only, no bpy: the operator
gives the folders and shows the progress.

Every step is skipped when its work is already there (the environment, the
packages pip finds satisfied), so an install that failed or was cancelled
resumes where it stopped. Each failure is named in one line.
"""
from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

MIN_PYTHON = (3, 10)
TORCH = ("torch>=2.3,<=2.14.1", "torchvision>=0.18,<=0.29.1")  # as the wheel requires
TORCH_INDEX = "https://download.pytorch.org/whl/"
TORCH_INDEX_ENV = "DREAM_TORCH_INDEX_URL"  # overrides the choice (a mirror, another CUDA or ROCm version)


@dataclass(frozen=True)
class TorchChoice:
    """Which PyTorch build to install, why, and where pip finds it."""

    kind: str  # CUDA, ROCm, MPS or CPU
    reason: str
    index_url: Optional[str] = None  # None: the default package index

    def describe(self) -> str:
        return f"PyTorch for {self.kind}: {self.reason}"


def choose_torch(system: str, machine: str, nvidia: bool, amd: bool) -> TorchChoice:
    """The build for a machine: ``system`` as platform.system() says it."""
    if system == "Darwin":
        if machine == "arm64":
            return TorchChoice("MPS", "Apple Silicon (Metal)")
        return TorchChoice("CPU", "an Intel Mac (PyTorch has no GPU build for it)")
    if nvidia and system in ("Linux", "Windows"):
        # Linux wheels on the default index are CUDA builds; Windows ones are CPU only
        return TorchChoice("CUDA", "an NVIDIA GPU", None if system == "Linux" else TORCH_INDEX + "cu128")
    if amd and system == "Linux":
        return TorchChoice("ROCm", "an AMD GPU with ROCm", TORCH_INDEX + "rocm6.4")
    gpu = "no NVIDIA or ROCm GPU found" if system in ("Linux", "Windows") else f"no GPU build for {system}"
    return TorchChoice("CPU", gpu, TORCH_INDEX + "cpu" if system == "Linux" else None)


def detect_torch() -> TorchChoice:
    """This machine's choice (NVIDIA: its driver; AMD: the ROCm kernel driver); the
    environment variable DREAM_TORCH_INDEX_URL overrides where it comes from."""
    nvidia = bool(shutil.which("nvidia-smi")) or os.path.exists("/proc/driver/nvidia/version")
    amd = os.path.exists("/dev/kfd")
    choice = choose_torch(platform.system(), platform.machine(), nvidia, amd)
    override = os.environ.get(TORCH_INDEX_ENV)
    if override:
        return TorchChoice(choice.kind, f"{choice.reason}; from {override} ({TORCH_INDEX_ENV})", override)
    return choice


def venv_python(folder: str) -> str:
    if sys.platform == "win32":
        return os.path.join(folder, "Scripts", "python.exe")
    return os.path.join(folder, "bin", "python")


def bundled_wheel(addon_dir: str) -> str:
    found = sorted(glob.glob(os.path.join(addon_dir, "wheels", "dream_renders-*.whl")))
    if not found:
        raise InstallError("this copy of the add-on holds no dream-renders wheel: install the zip that build.py "
                           "makes")
    return found[-1]


class InstallError(Exception):
    """An install step failed; the message says why in one line."""


def find_python(candidates: list[str]) -> str:
    """The first candidate that is Python 3.10+ and can make virtual environments."""
    tried = []
    probe = ("import sys, venv, ensurepip; "
             f"print('ok' if sys.version_info >= {MIN_PYTHON} else 'old %d.%d' % sys.version_info[:2])")
    for python in dict.fromkeys(c for c in candidates if c):
        try:
            out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            tried.append(f"{python} ({type(err).__name__})")
            continue
        if out.stdout.strip() == "ok":
            return python
        why = out.stdout.strip() or ("no venv/ensurepip module: on Debian or Ubuntu, apt install python3-venv"
                                     if "ensurepip" in out.stderr or "venv" in out.stderr else "does not run")
        tried.append(f"{python} ({why})")
    raise InstallError(f"no suitable Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+ that can make environments; tried "
                       + ", ".join(tried or ["none"]))


def failure(output: str, step: str) -> str:
    """One line naming why a step failed, from what it printed."""
    text = output.lower()
    if "no space left on device" in text or "errno 28" in text:
        return f"{step}: the disk is full (PyTorch needs a few GB)"
    if any(s in text for s in ("failed to establish a new connection", "temporary failure in name resolution",
                               "network is unreachable", "connection refused", "name or service not known",
                               "read timed out")):
        return f"{step}: no network (PyTorch and its packages come from the package index)"
    if "(from versions: none)" in text:  # pip reached no index that lists the package: offline, or a bad mirror
        return f"{step}: no network, or the package index cannot be reached (it listed no versions)"
    if "ensurepip is not available" in text or "no module named venv" in text:
        return f"{step}: this Python cannot make environments (on Debian or Ubuntu: apt install python3-venv)"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    return f"{step}: {(errors or lines or ['failed with no output'])[-1]}"


@dataclass
class Step:
    name: str
    command: list
    share: float  # of the whole install's progress


@dataclass
class Installer:
    """Runs the steps in a thread; ``status``/``fraction`` for the UI;
    ``cancel()`` stops the running step. ``error`` is set on failure."""

    folder: str  # where the environment goes
    wheel: str
    torch: TorchChoice
    pythons: list = field(default_factory=list)  # candidates to make the environment with
    status: str = ""
    fraction: float = 0.0
    error: Optional[str] = None
    done: bool = False
    cancelled: bool = False
    _process: Optional[subprocess.Popen] = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def python(self) -> str:
        return venv_python(self.folder)

    def steps(self) -> list[Step]:
        pip = [self.python, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
        index = ["--index-url", self.torch.index_url] if self.torch.index_url else []
        return [Step("PyTorch", [*pip, *TORCH, *index], 0.7),
                Step("Packages", [*pip, self.wheel], 0.15),
                # the bundled files themselves, even where pip sees this version installed (a rebuilt add-on)
                Step("Dream Renders", [*pip, "--no-deps", "--force-reinstall", self.wheel], 0.05),
                Step("Check", [self.python, "-c", "import dream_core.serving.command, torch; "
                               "print('torch', torch.__version__)"], 0.05)]

    def run(self, on_line: Callable[[str], None] = lambda line: None) -> None:
        """All steps, blocking; sets ``error`` instead of raising."""
        try:
            self._environment()
            finished = 0.05
            for step in self.steps():
                self._run_step(step, finished, on_line)
                finished += step.share
            self.fraction, self.status = 1.0, f"Installed ({self.torch.kind})"
        except InstallError as err:
            self.error = "cancelled; press Install Dream Server again to carry on" if self.cancelled else str(err)
        finally:
            self.done = True

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="dream-install", daemon=True)
        thread.start()
        return thread

    def cancel(self) -> None:
        self.cancelled = True
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()

    def _environment(self) -> None:
        if os.path.exists(self.python):
            return  # made by an earlier install: carry on from it
        self.status = "Finding a Python to make the environment with"
        python = find_python(self.pythons)
        self.status = f"Making the environment with {python}"
        self._run_step(Step("Environment", [python, "-m", "venv", self.folder], 0.05), 0.0, lambda line: None)

    def _run_step(self, step: Step, before: float, on_line: Callable[[str], None]) -> None:
        if self.cancelled:
            raise InstallError("cancelled")
        self.status, self.fraction = f"{step.name}: starting", before
        with self._lock:
            # run in the environment's folder: a dream_core beside Blender's working folder must not shadow it
            self._process = subprocess.Popen(step.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                             text=True, errors="replace", bufsize=1,
                                             cwd=self.folder if os.path.isdir(self.folder) else None)
        output = []
        for line in self._process.stdout:
            output.append(line)
            on_line(line.rstrip())
            self.status = f"{step.name}: {_short(line)}"
            self.fraction = min(before + step.share * 0.95, self.fraction + step.share / 40)
        code = self._process.wait()
        if code != 0:
            raise InstallError(failure("".join(output), step.name))


def _short(line: str, width: int = 90) -> str:
    line = re.sub(r"\s+", " ", line.strip())
    return line if len(line) <= width else line[: width - 1] + "…"
