"""Shared fixtures. Real models at tiny sizes; nothing touches the network."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from dream_core.engine import image_tensor
from dream_core.io import Picture, write_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.append(os.path.join(ROOT, "benchmarks"))  # bombs.py: what the soak and the tests both send


def pytest_configure(config):
    config.addinivalue_line("markers", "blender: needs Blender (bpy module or the blender binary)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU")
    from dream_core.engine.device import use_cpu_threads

    # the thread count the servers and the command line choose: a dream made here is bit for bit theirs (the sums
    # of a convolution split among other threads round differently, and gradient ascent carries it on)
    use_cpu_threads(0)


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


def run_in_window(blender_args: list[str], env: dict, timeout: float = 600,
                  screen: str = "1280x800x24") -> subprocess.CompletedProcess:
    """Blender with a window, under Xvfb. Blender can hang on quit after a
    failure, so on timeout the whole process group (xvfb-run, Xvfb,
    Blender) is killed and the test fails with what Blender printed."""
    process = subprocess.Popen(["xvfb-run", "-a", "-s", f"-screen 0 {screen}", *blender_args], env=env,
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


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return image_tensor(img[..., :3])


def write_token_file(path, token: str) -> str:
    """A token file as it must be: readable by its owner only."""
    path = str(path)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(token)
    os.chmod(path, 0o600)
    return path


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
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "build.py"), "--out", str(out)],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


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
