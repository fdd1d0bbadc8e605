"""Compiled engines without the wait.

``torch.compile`` builds an engine per tile shape, and building one took
94-214 s on an H100 (docs/BENCHMARKS.md) while the uncompiled frame takes
0.3-0.5 s. So a shape is never waited for: :class:`SwitchingValue` answers
with the eager module while :class:`ShapeBuilder` builds the compiled one on
a background thread (a forward and backward pass of an example of that
shape, under the caller's autocast), and switches to it once it is built.
The two compute the same function: results agree within the compiled
path's tolerance (exactly, with the ``eager`` backend tests use).

:class:`CompileCache` keeps PyTorch's compile caches in a folder of the
server's own, one subfolder per environment key (torch, Triton, CUDA,
driver, GPU, Python), so a restarted server finds what an earlier one
built, and another torch, driver or GPU never reuses it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import threading
from collections.abc import Callable
from typing import Optional

import torch

from ..shot.atomic import write_atomically

log = logging.getLogger(__name__)

ShapeKey = tuple  # (shape, dtype, autocast on, autocast dtype)


def shape_key(shape: tuple, dtype: torch.dtype, kind: str) -> ShapeKey:
    """What a compiled engine is specialised on: the input's shape and type,
    and the autocast it runs under here (a bf16 graph is another graph)."""
    return tuple(shape), dtype, kind, torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind)


class ShapeBuilder:
    """Builds compiled engines one at a time on a background thread, which
    exists only while there is work (a dreamer let go leaves no thread)."""

    def __init__(self, on_built: Optional[Callable[[], None]] = None) -> None:
        self.on_built = on_built  # e.g. saving the compile cache
        self.lock = threading.Condition()
        self.todo: list[tuple["SwitchingValue", ShapeKey]] = []
        self.thread: Optional[threading.Thread] = None

    def request(self, value: "SwitchingValue", key: ShapeKey) -> None:
        with self.lock:
            if key in value.ready or key in value.failed or any(v is value and k == key for v, k in self.todo):
                return
            self.todo.append((value, key))
            if self.thread is None:
                self.thread = threading.Thread(target=self._build_all, name="dream-compile", daemon=True)
                self.thread.start()

    def busy(self) -> bool:
        with self.lock:
            return self.thread is not None

    def pending(self) -> int:
        """Engines asked for and not yet built (the one building included)."""
        with self.lock:
            return len(self.todo)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Until every requested engine is built (or failed); False on timeout."""
        with self.lock:
            return self.lock.wait_for(lambda: self.thread is None, timeout)

    def _build_all(self) -> None:
        while True:
            with self.lock:
                if not self.todo:
                    self.thread = None
                    self.lock.notify_all()
                    return
                value, key = self.todo[0]
            value.build(key)
            with self.lock:
                self.todo.pop(0)
                self.lock.notify_all()
            if self.on_built is not None and key in value.ready:
                try:
                    self.on_built()
                except Exception:  # a cache that cannot be written costs the next start time, not this frame
                    log.exception("saving the compile cache failed")


class SwitchingValue:
    """Tiles -> objective values: the compiled engine for shapes it is built
    for, the eager module for the others (asking for them to be built)."""

    def __init__(self, eager: Callable, compiled: Callable, builder: ShapeBuilder, *, wait: bool = False) -> None:
        self.eager = eager
        self.compiled = compiled
        self.builder = builder
        self.wait = wait  # build on first use instead, in the caller's thread (benchmarks time the old way)
        self.ready: set = set()
        self.failed: set = set()
        self.calls = {"compiled": 0, "eager": 0}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = shape_key(x.shape, x.dtype, x.device.type)
        if key in self.ready or (self.wait and key not in self.failed):
            self.calls["compiled"] += 1
            if self.wait:
                self.ready.add(key)
            return self.compiled(x)
        self.builder.request(self, key)
        self.calls["eager"] += 1
        return self.eager(x)

    def build(self, key: ShapeKey) -> None:
        """One forward and backward pass of a zero example: what compiles
        the graph, its backward and (CUDA graphs) their warm-up."""
        shape, dtype, kind, autocast, autocast_dtype = key
        try:
            device = next(iter(self.eager.parameters())).device
            example = torch.zeros(shape, dtype=dtype, device=device, requires_grad=True)
            with torch.enable_grad(), torch.autocast(kind, dtype=autocast_dtype, enabled=autocast):
                torch.autograd.grad(self.compiled(example).float().sum(), example)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            self.ready.add(key)
            log.info("compiled engine ready for tiles %s", "x".join(map(str, shape)))
        except Exception:  # the eager engine goes on serving this shape
            self.failed.add(key)
            log.exception("compiling for tiles %s failed; that shape stays uncompiled", "x".join(map(str, shape)))


# --- the compile cache -------------------------------------------------------

KEEP_ENVIRONMENTS = 3  # cache folders of other environments kept (most recently used), the rest removed
ARTIFACTS = "artifacts.bin"


def environment() -> dict:
    """Everything whose change makes compiled code invalid or wrong."""
    facts = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
             "cuda": torch.version.cuda, "hip": torch.version.hip}
    try:
        import triton
        facts["triton"] = triton.__version__
    except ImportError:
        facts["triton"] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts["gpu"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        facts["capability"] = [props.major, props.minor]
        facts["driver"] = _driver_version()
    return facts


def _driver_version() -> Optional[str]:
    """The NVIDIA kernel driver's version line (Linux), where it can be read."""
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8", errors="replace") as f:
            return f.readline().strip()
    except OSError:
        return None


def environment_key(facts: dict) -> str:
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def default_cache_folder() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dream_renders", "compiled")


class CompileCache:
    """A folder of compiled artefacts per environment. :meth:`open` points
    PyTorch's on-disk caches (Inductor, Triton) into it and loads what an
    earlier process saved; :meth:`save` stores this process's artefacts."""

    def __init__(self, folder: str, facts: Optional[dict] = None) -> None:
        self.facts = environment() if facts is None else facts
        self.root = os.path.abspath(folder)
        self.folder = os.path.join(self.root, environment_key(self.facts))
        self.save_lock = threading.Lock()

    def open(self) -> int:
        """Makes the folder, directs the compile caches there, removes the
        folders of environments long unused; returns the artefacts loaded."""
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        with open(os.path.join(self.folder, "environment.json"), "w", encoding="utf-8") as f:
            json.dump(self.facts, f, indent=1, sort_keys=True)  # for a person wondering what a folder is
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(self.folder, "inductor")
        os.environ["TRITON_CACHE_DIR"] = os.path.join(self.folder, "triton")
        self._prune()
        return self._load()

    def _prune(self) -> None:
        others = [os.path.join(self.root, n) for n in os.listdir(self.root)
                  if os.path.isdir(os.path.join(self.root, n)) and os.path.join(self.root, n) != self.folder]
        others.sort(key=os.path.getmtime, reverse=True)
        for old in others[KEEP_ENVIRONMENTS:]:
            log.info("removing the compile cache of an environment long unused: %s", old)
            shutil.rmtree(old, ignore_errors=True)

    def _load(self) -> int:
        path = os.path.join(self.folder, ARTIFACTS)
        if not os.path.exists(path) or not hasattr(torch.compiler, "load_cache_artifacts"):
            return 0
        try:
            with open(path, "rb") as f:
                info = torch.compiler.load_cache_artifacts(f.read())
        except Exception as err:
            info, why = None, err
        else:
            why = "torch could not read it"  # it says why in its own warning
        if info is None:  # a torn or foreign file: rebuilt by this run
            log.warning("compile cache %s unreadable (%s); removed, engines are built afresh", path, why)
            os.remove(path)
            return 0
        count = sum(len(v) for v in info.artifacts.values())
        log.info("compile cache: %d artefacts loaded from %s", count, self.folder)
        return count

    def save(self) -> bool:
        """Writes every artefact this process compiled or loaded (atomically); False where torch cannot."""
        if not hasattr(torch.compiler, "save_cache_artifacts"):
            return False
        with self.save_lock:
            saved = torch.compiler.save_cache_artifacts()
            if saved is None:
                return False
            write_atomically(os.path.join(self.folder, ARTIFACTS), saved[0])
            return True
