"""Compiled engines without the wait (dream_core/engine/compiling.py), on
the CPU: torch.compile with backends of our own, one made slow on purpose
(it waits for the test to let it finish), stands for a GPU's minutes of
compilation; and the compile cache's folders, keys and invalidation."""
import glob
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest
import torch
from conftest import ROOT, to_tensor

from dream_core.config import DreamConfig
from dream_core.engine import Dreamer
from dream_core.engine.compiling import KEEP_ENVIRONMENTS, CompileCache, environment, environment_key

GATE = threading.Event()  # the gated backend compiles only once a test opens it
BUILT: list[int] = []
CONFIG = DreamConfig(octaves=2, iterations=2, tile=0)


def _register_backends() -> None:
    from torch._dynamo import list_backends, register_backend

    if "dream_test_gated" in list_backends(exclude_tags=()):
        return

    @register_backend
    def dream_test_gated(graph, example_inputs):
        if not GATE.wait(120):
            raise RuntimeError("the test never let this compile finish")
        BUILT.append(len(example_inputs))
        return graph.forward

    @register_backend
    def dream_test_broken(graph, example_inputs):
        raise RuntimeError("this backend cannot compile anything")


@pytest.fixture(scope="module", autouse=True)
def _backends():
    _register_backends()  # here, not at import: collecting the suite need not load TorchDynamo (2 s a worker)


@pytest.fixture()
def gated():
    GATE.clear()
    BUILT.clear()
    dreamer = Dreamer("lite0", weights=None, device="cpu", compile="dream_test_gated")
    yield dreamer
    GATE.set()  # a failing test must not leave the builder thread blocked
    dreamer.builder.wait(120)


@pytest.mark.slow
def test_a_new_shape_dreams_at_once_while_its_engine_compiles(gated, coffee):
    """The frame does not wait for the compiler: it is dreamed while the
    compilation is held back (waiting would hang here, then fail), with
    the eager engine; once built, frames of that shape switch over, and
    the two engines give the same frame."""
    image = to_tensor(coffee)
    objective = gated.objective()
    first = gated.run(image, objective, CONFIG)
    value = gated._value_fn(objective)
    assert value.calls == {"compiled": 0, "eager": 4}  # 2 octaves x 2 steps, all eager
    assert gated.builder.busy() and BUILT == []  # still compiling
    GATE.set()
    assert gated.builder.wait(120)
    assert len(value.ready) == 2 and not value.failed  # one engine per octave's shape
    second = gated.run(image, objective, CONFIG)
    assert value.calls == {"compiled": 4, "eager": 4}
    assert torch.equal(first, second)


@pytest.mark.slow
def test_prepare_builds_every_shape_a_frame_will_use(gated, coffee):
    """Told the size first (as the add-on does when it connects), the
    server builds every octave's tile shapes, the last partial batch of
    tiles included: the frame then runs compiled from its first step."""
    GATE.set()
    objective = gated.objective()
    config = DreamConfig(octaves=3, octave_scale=1.3, iterations=1, tile=96, tile_margin=32, tile_batch=5)
    height, width = coffee.shape[:2]
    assert gated.prepare(objective, height, width, config) >= 2  # full and partial batches of tiles
    assert gated.builder.wait(120)
    value = gated._value_fn(objective)
    gated.run(to_tensor(coffee), objective, config)
    assert value.calls["eager"] == 0 and value.calls["compiled"] > 0, value.calls
    assert Dreamer("lite0", weights=None, device="cpu", compile="off").prepare(objective, 96, 128) == 0


@pytest.mark.slow
def test_a_shape_that_fails_to_compile_stays_eager(coffee):
    dreamer = Dreamer("lite0", weights=None, device="cpu", compile="dream_test_broken")
    objective = dreamer.objective()
    image = to_tensor(coffee)
    first = dreamer.run(image, objective, CONFIG)
    assert dreamer.builder.wait(120)
    value = dreamer._value_fn(objective)
    assert len(value.failed) == 2 and not value.ready
    second = dreamer.run(image, objective, CONFIG)  # not built again: eager, the same frame
    assert torch.equal(first, second) and value.calls["compiled"] == 0


@pytest.mark.slow
def test_waiting_for_the_compiler_is_still_possible(coffee):
    """Benchmarks time the compile itself: ``wait_for_compile`` builds in
    the caller's thread, on first use."""
    GATE.set()
    dreamer = Dreamer("lite0", weights=None, device="cpu", compile="dream_test_gated", wait_for_compile=True)
    objective = dreamer.objective()
    dreamer.run(to_tensor(coffee), objective, CONFIG)
    assert dreamer._value_fn(objective).calls == {"compiled": 4, "eager": 0}
    assert not dreamer.builder.busy()


# --- the compile cache -------------------------------------------------------

def test_each_environment_has_its_own_cache_folder(tmp_path):
    facts = environment()
    assert facts["torch"] == torch.__version__ and "python" in facts
    keys = {environment_key(facts)}
    for change in ({"torch": "0.0.1"}, {"driver": "NVRM 999"}, {"gpu": ["another GPU"]}, {"triton": "9"}):
        keys.add(environment_key({**facts, **change}))
    assert len(keys) == 5  # another torch, driver, GPU or Triton never shares a folder
    cache = CompileCache(str(tmp_path), facts)
    assert cache.open() == 0
    assert os.path.dirname(cache.folder) == str(tmp_path)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"].startswith(cache.folder)
    assert os.environ["TRITON_CACHE_DIR"].startswith(cache.folder)
    with open(os.path.join(cache.folder, "environment.json"), encoding="utf-8") as f:
        assert json.load(f) == json.loads(json.dumps(facts))  # says what made the folder


def test_folders_of_environments_long_unused_are_removed(tmp_path):
    old = []
    for n in range(KEEP_ENVIRONMENTS + 2):
        folder = tmp_path / f"old{n}"
        folder.mkdir()
        os.utime(folder, (1000 + n, 1000 + n))
        old.append(folder)
    CompileCache(str(tmp_path), {"torch": "this one"}).open()
    assert [f.exists() for f in old] == [False, False] + [True] * KEEP_ENVIRONMENTS


def test_an_unreadable_cache_file_is_removed_not_trusted(tmp_path):
    cache = CompileCache(str(tmp_path), {"torch": "x"})
    os.makedirs(cache.folder)
    torn = os.path.join(cache.folder, "artifacts.bin")
    with open(torn, "wb") as f:
        f.write(b"\x00\x01 not what torch wrote")
    assert cache.open() == 0
    assert not os.path.exists(torn)


RESTART = r"""
import os, sys, torch
from torch._dynamo.utils import counters
from dream_core.engine.compiling import CompileCache
cache = CompileCache(sys.argv[1])
loaded = cache.open()
fn = torch.compile(lambda x: (x * 2 + 1).sin(), dynamic=False)
fn(torch.ones(8))
print("saved" if cache.save() else "not saved", loaded, counters["inductor"]["fxgraph_cache_hit"])
"""


@pytest.mark.slow
def test_a_restarted_process_loads_what_the_last_one_compiled(tmp_path):
    """Two processes, as a server and its restart: the second loads the
    first's artefacts from the cache folder and compiles from the cache
    (Inductor's graph cache hits), even with Inductor's own folder gone.
    Inductor on the CPU: a tiny function."""
    # VEC_ISA_OK: Inductor otherwise builds a probe program for each vector instruction set in its own folder,
    # which this test removes between the runs: 9 s a process spent on what the test is not about
    env = {**os.environ, "PYTHONPATH": ROOT, "TORCHINDUCTOR_FX_GRAPH_CACHE": "1", "TORCHINDUCTOR_VEC_ISA_OK": "1"}
    runs = []
    for _ in range(2):
        runs.append(subprocess.run([sys.executable, "-c", RESTART, str(tmp_path)], capture_output=True, text=True,
                                   env=env, timeout=600))
        for inductor in glob.glob(str(tmp_path / "*" / "inductor")):
            shutil.rmtree(inductor)  # what is found again comes from the saved artefacts
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    first, second = (run.stdout.split() for run in runs)
    assert first[0] == "saved" and first[1] == "0"
    assert int(second[1]) > 0 and int(second[2]) > 0, (first, second)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_switch_to_cuda_graphs_built_on_another_thread_is_faithful():
    """On a GPU: the first frame eager (bf16) while the graphs build on the
    builder's thread, later frames through them on this one; both within
    2% of the float32 objective."""
    torch.manual_seed(0)
    image = torch.rand(1, 3, 270, 480, device="cuda")
    fast = Dreamer("googlenet", weights=None, device="cuda")
    ref = Dreamer("googlenet", weights=None, device="cuda", compile="off")
    ref.net.load_state_dict(fast.net.state_dict())
    objective = fast.objective("inception4c")
    config = DreamConfig(octaves=2, iterations=3)
    eager = fast.run(image, objective, config)
    assert fast.builder.wait(900)
    value = fast._value_fn(objective)
    assert len(value.ready) == 2 and not value.failed
    compiled = fast.run(image, objective, config)
    assert value.calls["compiled"] == 6
    fp32 = config.replace(precision="fp32")
    target = ref.score(ref.run(image, objective, fp32), objective, fp32)
    for out in (eager, compiled):
        assert abs(ref.score(out, objective, fp32) - target) / target < 0.02
