"""Shared fixtures. Real models at tiny sizes; nothing touches the network."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

# torch and dream_core are imported where used: xdist's controller, which runs no test, loads this file too
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.append(os.path.join(ROOT, "benchmarks"))  # bombs.py: what the soak and the tests both send


def bundled_packages() -> tuple[str, ...]:
    """dream_core's standard-library-only packages that build.py copies verbatim into the add-on
    (``build.BUNDLED``), each a subpackage of the add-on of the same name."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dream_renders_build", os.path.join(ROOT, "build.py"))
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build.BUNDLED


def pytest_configure(config):
    config.addinivalue_line("markers", "blender: needs Blender (bpy module or the blender binary)")
    config.addinivalue_line("markers", "blender_batch(key, scenario=, module=, env=, runtime=): the test checks "
                            "the result of scenario KEY, run with the others of its runtime in one Blender process "
                            "(fixture blender_batch)")
    config.addinivalue_line("markers", "xdist_group(name): tests that pytest-xdist runs in one worker")
    config.addinivalue_line("markers", "slow: takes more than a few seconds, or starts processes of its own (a server, "
                            "Ray, a command line); every blender test is slow too. ./run fast leaves them out")
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU")
    # Ray starts its workers at nice 15: beside another worker's test they got a few percent of a core and a
    # Ray test crawled (minutes beside one busy process); the suite's tests share the machine as equals
    os.environ.setdefault("RAY_worker_niceness", "0")
    if "PYTEST_XDIST_WORKER" not in os.environ and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(threads_for_the_run(config))  # xdist's workers are started after this
    if not _runs_tests(config):  # where the workers say which tests share a worker (pytest_xdist_make_scheduler)
        import tempfile

        os.environ[GROUPS_ENV] = tempfile.mkdtemp(prefix="dream-test-groups-")


def pytest_unconfigure(config):
    if not _runs_tests(config) and os.environ.get(GROUPS_ENV):
        shutil.rmtree(os.environ.pop(GROUPS_ENV), ignore_errors=True)
    if _runs_tests(config):
        from dream_core.engine.device import use_cpu_threads

        # the thread count the servers and the command line choose: a dream made here is bit for bit theirs (the
        # sums of a convolution split among other threads round differently, and gradient ascent carries it on)
        use_cpu_threads(0)


def _runs_tests(config) -> bool:
    """False in xdist's controller, which hands the tests to its workers."""
    parallel = getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") != "no"
    return "PYTEST_XDIST_WORKER" in os.environ or not parallel


def threads_for_the_run(config) -> int:
    """Torch's CPU threads in every process of the run (this one, xdist's workers, the servers, the command
    line, Blender's servers and Ray's actors all read OMP_NUM_THREADS): half the cores, as a server takes, shared
    among the workers. More threads than a process's share of the cores wait on each other (docs/BENCHMARKS.md:
    4-25 times slower on busy cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = 1 if _runs_tests(config) else len(getattr(config.option, "tx", None) or [])  # -n N, <= --maxprocesses
    return max(1, cores // 2 // max(1, workers))


@pytest.fixture(scope="session")
def lite0():
    from dream_core.engine import Dreamer

    return Dreamer("lite0", device="cpu")


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    """A real photo, 96×128, sRGB float in [0, 1]."""
    import cv2
    import skimage.data

    img = cv2.resize(skimage.data.coffee(), (128, 96), interpolation=cv2.INTER_AREA)
    return img.astype(np.float32) / 255


@pytest.fixture()
def rng():
    return np.random.default_rng(1234)


def run_cli(*args: str, cwd: str | None = None, input: str | None = None, env: dict | None = None):
    """Runs ``python -m dream_core`` as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.run([sys.executable, "-m", "dream_core", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, input=input, env=full_env, timeout=600)


def cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m dream_core ARGS`` run in this process: ``main`` as the process runs it, with what it prints
    and the status it exits with. The model stays loaded from one call to the next (engine.cached_dreamer):
    one for the session, where each process loaded its own. What only a process shows (its exit status
    through ``python -m``, the modules it loads, signals) is tested with :func:`run_cli`."""
    import contextlib
    import io

    import torch

    from dream_core.cli import main

    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as stop:  # argparse: --help, an option it refuses
                code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    finally:
        torch.set_num_threads(threads)  # --threads sets this process's: the next test's is the session's
    return subprocess.CompletedProcess(["python", "-m", "dream_core", *args], code, out.getvalue(), err.getvalue())


def run_in_window(blender_args: list[str], env: dict, timeout: float = 600,
                  screen: str = "800x600x24") -> subprocess.CompletedProcess:
    """Blender with a window, under Xvfb (a small screen by default: llvmpipe
    draws every pixel of the window on the CPU). Blender can hang on quit after a
    failure, so on timeout the whole process group (xvfb-run, Xvfb,
    Blender) is killed and the test fails with what Blender printed."""
    # xvfb-run -a takes the first free display from its -n on; two workers starting from the same one at
    # once could both take it: each xdist worker starts from a number of its own
    first = 99 + 10 * int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    process = subprocess.Popen(["xvfb-run", "-a", "-n", str(first), "-s", f"-screen 0 {screen}", *blender_args],
                               env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"Blender did not end within {timeout} s; it printed:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def visible(folder) -> list[str]:
    """A folder's files as a user lists them (a run's records are in the hidden .dream)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def to_tensor(img: np.ndarray):
    from dream_core.engine import image_tensor

    return image_tensor(img[..., :3])


def write_token_file(path, token: str) -> str:
    """A token file as it must be: readable by its owner only."""
    path = str(path)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(token)
    os.chmod(path, 0o600)
    return path


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the xdist_group marks added here
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("blender") is not None:
            item.add_marker(pytest.mark.slow)  # Blender starts, renders with Cycles and dreams: never quick
        batch = item.get_closest_marker("blender_batch")
        if batch is not None:  # a runtime's batch runs once, in one worker: all its tests go there
            item.add_marker(pytest.mark.xdist_group(f"blender-batch-{_batch_runtime(item)}"))
    if "PYTEST_XDIST_WORKER" in os.environ:  # the long tests handed out first, the quick ones fill in at the end
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)
        if os.environ.get(GROUPS_ENV):
            groups = {item.nodeid: "_".join(sorted({str(m.args[0]) for m in item.iter_markers("xdist_group")}))
                      for item in items if item.get_closest_marker("xdist_group") is not None}
            path = os.path.join(os.environ[GROUPS_ENV], os.environ["PYTEST_XDIST_WORKER"] + ".json")
            with open(path + ".partial", "w") as f:
                json.dump(groups, f)
            os.replace(path + ".partial", path)


GROUPS_ENV = "DREAM_TEST_XDIST_GROUPS"


def _make_group_scheduler(config, log):
    """``--dist loadgroup`` as pytest-xdist means it: the tests of an xdist_group in one worker. xdist 3.8
    carries a test's group in its id, which pytest 9.2 no longer lets it change (pytest-xdist#1386): the
    groups went unnoticed and a Blender batch ran once in each worker. The workers write each test's group
    to a file (pytest_collection_modifyitems) that this scheduler reads; an id that does carry its group
    (an older pytest) is read as xdist reads it."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        groups: dict | None = None

        def _split_scope(self, nodeid: str) -> str:
            if nodeid.rfind("@") > nodeid.rfind("]"):
                return nodeid.split("@")[-1]
            if self.groups is None:
                folder = os.environ[GROUPS_ENV]
                written = sorted(name for name in os.listdir(folder) if name.endswith(".json"))
                with open(os.path.join(folder, written[0])) as f:  # the workers collected the same tests
                    GroupScheduling.groups = json.load(f)
            return self.groups.get(nodeid, nodeid)

    return GroupScheduling(config, log)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent without it
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadgroup" and os.environ.get(GROUPS_ENV):
        return _make_group_scheduler(config, log)
    return None


def _batch_runtime(item) -> str:
    batch = item.get_closest_marker("blender_batch")
    callspec = getattr(item, "callspec", None)
    return batch.kwargs.get("runtime") or callspec.params["runtime"]


BLENDER = shutil.which("blender")


def _has_bpy() -> bool:
    """Whether the bpy module imports, asked once for the run: xdist's workers inherit the answer."""
    known = os.environ.get("DREAM_TEST_HAS_BPY")
    if known is None:
        probe = subprocess.run([sys.executable, "-c", "import bpy"], capture_output=True, timeout=120)
        known = os.environ["DREAM_TEST_HAS_BPY"] = "1" if probe.returncode == 0 else "0"
    return known == "1"


HAS_BPY = _has_bpy()
RUNTIMES = [
    pytest.param("bpy", marks=pytest.mark.skipif(not HAS_BPY, reason="bpy module not installed")),
    pytest.param("blender", marks=pytest.mark.skipif(BLENDER is None, reason="Debian's blender not installed")),
]
SCENARIOS = os.path.join(ROOT, "tests", "blender_scenarios.py")


def run_scenario(runtime, name, tmp_path, zip_path, env_extra, cwd=None, script=SCENARIOS):
    """Scenario NAME of ``script`` in a Blender process of its own: the bpy module (``runtime`` bpy) or
    Debian's ``blender -b``; its RESULT, its work folder and what it printed."""
    result, work = scenario_process(runtime, name, tmp_path, zip_path, env_extra, cwd, script)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):]), work, result.stdout


def scenario_process(runtime, name, tmp_path, zip_path, env_extra, cwd=None, script=SCENARIOS, timeout=900):
    """The finished Blender process of scenario NAME (its user folders in ``tmp_path/user``) and its work folder."""
    work = tmp_path / "work"
    work.mkdir()
    user = tmp_path / "user"
    env = {**os.environ, "BLENDER_USER_CONFIG": str(user / "config"), "BLENDER_USER_SCRIPTS": str(user / "scripts"),
           "BLENDER_USER_EXTENSIONS": str(user / "extensions"), **env_extra}
    for key in ("DREAM_SERVER_PYTHON", "DREAM_SERVER_ADDRESS", "DREAM_SERVER_TOKEN_FILE"):
        if key not in env_extra:
            env.pop(key, None)
    if runtime == "bpy":
        cmd = [sys.executable, script, name, str(work), zip_path]
    else:
        cmd = [BLENDER, "-b", "--factory-startup", "--python", script, "--", name, str(work), zip_path]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd or str(tmp_path)), work


class BlenderBatch:
    """The scenarios of this session's tests marked ``blender_batch``, run
    per runtime in one Blender process (blender_scenarios.scenario_batch)
    the first time a test asks for one of them: a Blender started, the add-on
    installed and a server reached once for many scenarios. Each scenario
    has its own work folder and variables; every test still checks its own
    scenario's result, and one that failed fails its test alone."""

    def __init__(self, request, tmp_path_factory):
        self.request, self.tmp_path_factory = request, tmp_path_factory
        self.runs: dict[str, dict] = {}

    def __call__(self, runtime: str, key: str):
        """(result, work folder, what the scenario printed) of scenario KEY in ``runtime``."""
        if runtime not in self.runs:
            self.runs[runtime] = self._run(runtime)
        run = self.runs[runtime]
        if key not in run["plan"]:
            pytest.fail(f"scenario {key} is not in the {runtime} batch: mark its test blender_batch({key!r})")
        printed = run["sections"].get(key)
        if printed is None:
            pytest.fail(f"the {runtime} batch ended before scenario {key} (status {run['status']}):\n"
                        f"{run['stdout'][-3000:]}\n{run['stderr'][-3000:]}")
        results = [line for line in printed.splitlines() if line.startswith(f"BATCH-RESULT {key} ")]
        if not results:
            pytest.fail(f"scenario {key} failed in {runtime}:\n{printed[-6000:]}")
        return json.loads(results[0][len(f"BATCH-RESULT {key} "):]), run["folder"] / key / "work", printed

    def user(self, runtime: str):
        """The Blender user folder (config, scripts, extensions) where the batch, once run, installed the add-on."""
        return self.runs[runtime]["folder"].parent / "user"

    def _plan(self, runtime: str) -> list[dict]:
        plan, seen = [], set()
        for item in self.request.session.items:
            batch = item.get_closest_marker("blender_batch")
            if batch is None or _batch_runtime(item) != runtime or batch.args[0] in seen:
                continue
            key = batch.args[0]
            seen.add(key)
            plan.append({"key": key, "scenario": batch.kwargs.get("scenario", key),
                         "module": batch.kwargs.get("module", "blender_scenarios"), "env": batch.kwargs.get("env", {})})
        return plan

    def _run(self, runtime: str) -> dict:
        plan = self._plan(runtime)
        folder = self.tmp_path_factory.mktemp(f"batch_{runtime}")
        with open(folder / "plan.json", "w") as f:
            json.dump(plan, f)
        getvalue = self.request.getfixturevalue
        server, token = getvalue("server"), getvalue("token_file")
        env = {"DREAM_SERVER_ADDRESS": server.address, "DREAM_SERVER_TOKEN_FILE": token,
               "DREAM_TEST_BATCH": str(folder / "plan.json")}
        try:
            done, work = scenario_process(runtime, "batch", folder, getvalue("addon_zip"), env, timeout=1800)
        except subprocess.TimeoutExpired as late:  # what it printed: the scenarios that ended, and where it hung
            printed = [out.decode(errors="replace") if isinstance(out, bytes) else out or ""
                       for out in (late.stdout, late.stderr)]
            done, work = subprocess.CompletedProcess(late.cmd, "timed out", *printed), folder / "work"
        (work.parent / "printed.txt").write_text(done.stdout)  # BATCH-TIME lines: where a batch's time goes
        sections, key = {}, None
        for line in done.stdout.splitlines(keepends=True):
            if line.startswith("BATCH-BEGIN "):
                key = line.split()[1]
                sections[key] = ""
            elif key is not None:
                sections[key] += line
        return {"plan": [entry["key"] for entry in plan], "sections": sections, "folder": work,
                "stdout": done.stdout, "stderr": done.stderr, "status": done.returncode}


@pytest.fixture(scope="session")
def blender_batch(request, tmp_path_factory):
    """``blender_batch(runtime, key)``: see BlenderBatch."""
    return BlenderBatch(request, tmp_path_factory)


TEST_MAX_PAYLOAD_MB = 4


@pytest.fixture(scope="session")
def server():
    """One real dream server process on loopback for the whole session."""
    from dream_core.wire.spawn import spawn_server

    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = spawn_server(sys.executable, device="cpu", env=env,
                        extra_args=["--max-payload-mb", str(TEST_MAX_PAYLOAD_MB), "--job-idle-timeout", "60",
                                    "--heartbeat", "0.25"])
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def token_file(server, tmp_path_factory):
    """The session server's token, in a file as the add-on reads it."""
    path = tmp_path_factory.mktemp("token") / "token"
    write_token_file(path, server.token)
    return str(path)


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory):
    """``build.py --out DIR``'s zip (the wheel beside it in DIR), built as a user builds it, once for the
    run: the xdist workers share it (the first to come builds it, holding a lock)."""
    import fcntl

    shared = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        shared = shared.parent  # the run's folder, above each worker's
    with open(shared / "dist.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = shared / "dist" / "built"
        if not built.exists():
            result = subprocess.run([sys.executable, os.path.join(ROOT, "build.py"), "--out",
                                     str(shared / "dist")], capture_output=True, text=True, check=True)
            built.write_text(result.stdout.strip())
        return built.read_text()


@pytest.fixture()
def via_server(server, token_file):
    """The environment that points the add-on at the session's server."""
    return {"DREAM_SERVER_ADDRESS": server.address, "DREAM_SERVER_TOKEN_FILE": token_file}


@pytest.fixture()
def client(server):
    from dream_core.wire.client import DreamClient

    with DreamClient(server.address, server.token, timeout=60) as c:
        yield c


def raw_frame(height: int, width: int, seed: int = 0, channels: int = 3) -> bytes:
    """Raw uint8 pixels of a smooth random picture."""
    rng = np.random.default_rng(seed)
    small = rng.random((4, 4, channels))
    import cv2

    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    if img.ndim == 2:
        img = img[..., None]
    return (np.clip(img, 0, 1) * 255).astype(np.uint8).tobytes()


@pytest.fixture()
def pan(tmp_path, coffee):
    """Eight frames of a picture panning 2 px a frame, stored as float EXR (no rounding between chunks)."""
    from dream_core.io import Picture, write_image

    folder = tmp_path / "renders"
    wide = np.concatenate([coffee, coffee[:, ::-1]], axis=1) ** 2.2
    for n in range(1, 9):
        write_image(str(folder / f"pan_{n:04d}.exr"), Picture(np.ascontiguousarray(wide[:, 2 * n:2 * n + 96]), True,
                                                               "float32"))
    return folder


TINY_PARAMS = {"octaves": 1, "iterations": 2, "seed": 3}


def dream_raw(client, height=40, width=48, seed=0, params=TINY_PARAMS, **kwargs):
    return client.dream(raw_frame(height, width, seed), "raw", params,
                        raw={"dtype": "uint8", "shape": [height, width, 3]},
                        output={"format": "raw", "dtype": "uint8"}, **kwargs)


# what the writing program says about a file itself, not the picture's stamp
FILE_KEYS = {"dpi", "exif", "icc_profile", "jfif", "jfif_version", "jfif_unit", "jfif_density", "compression",
             "progression", "progressive", "resolution"}


def stamp_of(path) -> dict:
    """A file's text metadata as a reader sees it: PNG text chunks, JPEG
    comment markers (Blender writes ``Blender:key:value``), EXR string
    attributes; TIFF holds none of Blender's."""
    from PIL import Image

    path = str(path)
    if path.endswith(".exr"):
        import OpenEXR

        return {k: v for k, v in OpenEXR.File(path, header_only=True).header().items() if isinstance(v, str)}
    with Image.open(path) as image:
        if path.endswith(".jpg"):
            found = [data.decode("utf-8").split(":", 2) for marker, data in image.applist if marker == "COM"]
            return {parts[1]: parts[2] for parts in found if len(parts) == 3 and parts[0] == "Blender"}
        if path.endswith(".tif"):
            return {}
        return {k: v for k, v in image.info.items() if k not in FILE_KEYS}
