"""Live Dream where Blender has no window: the bpy 5.0.1 module and
Debian's Blender 3.4 with ``-b`` (blender_scenarios.scenario_live_headless,
in the runtime's batch). The window itself: tests/test_live_window.py."""
import pytest
from conftest import RUNTIMES


@pytest.mark.blender
@pytest.mark.blender_batch("live_headless")
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_live_dream_registers_and_says_it_needs_a_window(runtime, blender_batch):
    result, _, _ = blender_batch(runtime, "live_headless")
    assert result["operator"] and result["stats"] and result["header"]
    assert "Live Dream needs a window" in result["refused"], result["refused"]
    assert result["gone"] and result["back"]  # unregistered cleanly, registered again
