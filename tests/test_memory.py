"""A 4096×4096 frame dreams on the CPU with bounded memory: tiling keeps the
activations of one tile alive at a time."""
import json
import subprocess
import sys

import pytest
from conftest import ROOT

SCRIPT = """
import json, resource, numpy as np
from dream_core import dream
img = np.random.default_rng(0).random((4096, 4096, 3), dtype=np.float32)
out = dream(img, device="cpu", octaves=1, iterations=1, tile=512, layer="block9")
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_gib": peak_kib / 2**20, "changed": float(np.abs(out - img).mean())}))
"""


@pytest.mark.slow
def test_4k_square_frame_peaks_under_4_gib():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT,
                            timeout=900)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(figures)
    assert figures["changed"] > 0.001
    assert figures["peak_gib"] < 4.0
