"""Install Dream Server's logic (blender_addon/installer.py, standard
library only): which PyTorch build a machine gets, the one-line causes of
failure, and a real install into an environment that already sees this
test environment's packages, so pip installs just the bundled wheel."""
import json
import os
import shutil
import site
import subprocess
import sys

import pytest
from conftest import ROOT, run_in_window
from test_blender import BLENDER, RUNTIMES, run_scenario

sys.path.insert(0, os.path.join(ROOT, "blender_addon"))
import installer  # noqa: E402


@pytest.mark.parametrize("system, machine, nvidia, amd, kind, index", [
    ("Linux", "x86_64", True, False, "CUDA", None),  # the default index's Linux wheels are CUDA builds
    ("Windows", "AMD64", True, False, "CUDA", "https://download.pytorch.org/whl/cu128"),
    ("Linux", "x86_64", False, True, "ROCm", "https://download.pytorch.org/whl/rocm6.4"),
    ("Linux", "x86_64", True, True, "CUDA", None),
    ("Darwin", "arm64", False, False, "MPS", None),
    ("Darwin", "x86_64", False, False, "CPU", None),
    ("Linux", "aarch64", False, False, "CPU", "https://download.pytorch.org/whl/cpu"),
    ("Windows", "AMD64", False, True, "CPU", None),  # no ROCm wheels for Windows
])
def test_each_machine_gets_its_pytorch_build_and_hears_why(system, machine, nvidia, amd, kind, index):
    choice = installer.choose_torch(system, machine, nvidia, amd)
    assert (choice.kind, choice.index_url) == (kind, index)
    assert choice.describe().startswith(f"PyTorch for {kind}: ") and len(choice.reason) > 8


def test_a_mirror_overrides_where_pytorch_comes_from(monkeypatch):
    monkeypatch.setenv(installer.TORCH_INDEX_ENV, "https://mirror.example/torch")
    choice = installer.detect_torch()
    assert choice.index_url == "https://mirror.example/torch" and installer.TORCH_INDEX_ENV in choice.reason


@pytest.mark.parametrize("output, words", [
    ("ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device", "the disk is full"),
    ("WARNING: Retrying (Retry(total=0...)) after connection broken by 'NewConnectionError(...: Failed to establish "
     "a new connection: [Errno 111] Connection refused')\nERROR: No matching distribution found for torch",
     "no network"),
    ("Error: Command '[...python', '-m', 'ensurepip'...]' returned non-zero exit status 1. ensurepip is not "
     "available", "apt install python3-venv"),
    ("ERROR: Could not find a version that satisfies the requirement torch (from versions: none)", "no network"),
    ("Collecting torch\nERROR: Invalid requirement: 'torch>>2'", "ERROR: Invalid requirement"),
])
def test_failures_are_named_in_one_line(output, words):
    line = installer.failure(output, "PyTorch")
    assert line.startswith("PyTorch: ") and words in line and "\n" not in line


def test_no_suitable_python_names_what_was_tried(tmp_path):
    with pytest.raises(installer.InstallError, match=r"no suitable Python 3\.10\+.*nowhere/python3 \(FileNotFound"):
        installer.find_python([str(tmp_path / "nowhere" / "python3")])
    assert installer.find_python(["", sys.executable]) == sys.executable


@pytest.fixture(scope="session")
def wheel(addon_zip):
    """The wheel build.py leaves beside the zip (the one inside it)."""
    (found,) = [p for p in os.listdir(os.path.dirname(addon_zip)) if p.endswith(".whl")]
    return os.path.join(os.path.dirname(addon_zip), found)


@pytest.fixture(scope="session")
def interrupted_install(tmp_path_factory) -> str:
    """A new environment, as an earlier, interrupted install left it, that
    also sees this test environment's packages (PyTorch is already there).
    Made once and copied where each test needs it (install_scenarios.py):
    an environment made with pip takes seconds, a copy of it a fraction."""
    folder = tmp_path_factory.mktemp("interrupted") / "server"
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, capture_output=True, timeout=300)
    python = installer.venv_python(str(folder))
    target = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(target, "test_environment.pth"), "w") as f:
        f.write("\n".join(site.getsitepackages()) + "\n")
    return str(folder)


def copy_environment(made: str, folder) -> str:
    """``made`` copied to ``folder`` (its interpreter a link, as venv made it); its Python."""
    shutil.copytree(made, folder, symlinks=True)
    return installer.venv_python(str(folder))


@pytest.mark.slow
def test_an_install_resumes_in_its_environment_and_serves(tmp_path, wheel, interrupted_install):
    folder = tmp_path / "server"
    python = copy_environment(interrupted_install, folder)
    job = installer.Installer(str(folder), wheel, installer.TorchChoice("CPU", "a test"), [sys.executable])
    lines = []
    job.run(on_line=lines.append)
    assert job.error is None, job.error + "\n" + "\n".join(lines[-30:])
    assert job.fraction == 1.0 and job.status == "Installed (CPU)" and job.python == python
    assert any("Requirement already satisfied: torch" in line for line in lines)  # nothing downloaded
    own = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as Blender starts it: not this checkout's
    where = subprocess.run([python, "-c", "import dream_core; print(dream_core.__file__)"], capture_output=True,
                           text=True, check=True, cwd=tmp_path, env=own).stdout
    assert where.startswith(str(folder))  # the wheel's own files, not this checkout
    served = subprocess.run([python, "-m", "dream_core", "serve", "--help"], capture_output=True, text=True,
                            cwd=tmp_path, env=own)
    assert served.returncode == 0 and "--token-file" in served.stdout


INSTALL = os.path.join(ROOT, "tests", "install_scenarios.py")


@pytest.mark.blender
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_install_dream_server_inside_blender(runtime, tmp_path, addon_zip, interrupted_install):
    """The button's operator, resuming an environment: PyTorch already
    there, the bundled wheel installed, the preferences pointed at it, and
    a server started from it answers."""
    env = {"DREAM_TEST_ENVIRONMENT": interrupted_install}
    result, work, out = run_scenario(runtime, "install_server", tmp_path, addon_zip, env, script=INSTALL)
    assert result["error"] is None, out[-3000:]
    assert result["before"] == ""
    assert result["python"] == result["after"] == installer.venv_python(result["folder"])
    assert result["folder"].startswith(str(tmp_path / "user"))  # the add-on's user folder, not the checkout
    assert "PyTorch for CPU: no NVIDIA or ROCm GPU found" in out
    assert result["status"].startswith("Installed: dream server") and "(CPU: " in result["info"], result
    if runtime != "blender":
        return
    # a farm machine's command line: resumes (nothing to download, so an unreachable index does no harm) ...
    user = tmp_path / "user"
    farm = {**os.environ, "BLENDER_USER_CONFIG": str(user / "config"), "BLENDER_USER_SCRIPTS": str(user / "scripts"),
            "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0", "PIP_TIMEOUT": "5",
            "PIP_CONFIG_FILE": os.devnull, installer.TORCH_INDEX_ENV: "http://127.0.0.1:9/simple"}
    command = [BLENDER, "-b", "--addons", "dream_renders", "--python-expr",
               "import bpy; bpy.ops.dream.install_server()"]
    again = subprocess.run(command, capture_output=True, text=True, env=farm, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "Dream Renders: Installed: dream server" in again.stdout
    # ... and on a machine with no environment yet and no network: status 1, one line saying so
    fresh = {**farm, "BLENDER_USER_CONFIG": str(tmp_path / "farm_config")}
    failed = subprocess.run(command, capture_output=True, text=True, env=fresh, timeout=600)
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    errors = [line for line in failed.stderr.splitlines() if line.startswith("Dream Renders: error:")]
    assert len(errors) == 1 and "Install Dream Server failed: PyTorch: no network" in errors[0], failed.stderr


@pytest.mark.blender
@pytest.mark.skipif(not (BLENDER and shutil.which("xvfb-run")), reason="needs blender and xvfb-run")
def test_install_dream_server_in_the_window_cancels_and_carries_on(tmp_path, addon_zip, interrupted_install):
    env = {"DREAM_TEST_ENVIRONMENT": interrupted_install}
    run_scenario("blender", "prepare_install", tmp_path, addon_zip, env, script=INSTALL)
    user = tmp_path / "user"
    gui_env = {**os.environ, "BLENDER_USER_CONFIG": str(user / "config"),
               "BLENDER_USER_SCRIPTS": str(user / "scripts")}
    for key in ("DREAM_SERVER_PYTHON", "DREAM_SERVER_ADDRESS", "DREAM_SERVER_TOKEN_FILE"):
        gui_env.pop(key, None)
    result = run_in_window([BLENDER, "--python", os.path.join(ROOT, "tests", "gui_scenarios.py"), "--", "install",
                            str(tmp_path), addon_zip], gui_env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines and "Traceback" not in result.stdout + result.stderr, result.stdout[-3000:] + result.stderr[-3000:]
    found = json.loads(lines[-1][len("RESULT "):])
    assert found["installing"] is True  # the operator returned at once: the window stays live
    assert found["cancelled"] == "Failed: cancelled; press Install Dream Server again to carry on"
    assert found["status"].startswith("Installed (PyTorch for CPU) in ") and found["info"].startswith("dream server")
