"""A sequence's exact carried state: kept as bytes, restored bit for bit, in
this process and through the server; forged or mismatched bytes refused."""
import json
import struct

import numpy as np
import pytest
import torch
from conftest import TINY_PARAMS
from test_pipeline import RAW_OUT, SHAPE, panning
from test_temporal import _moving_pictures

from dream_core.config import DreamConfig, DreamSettings
from dream_core.frame import carried_state
from dream_core.frame.carried_state import BadState
from dream_core.frame.pipeline import SequenceDreamer
from dream_core.frame.temporal import Previous
from dream_core.wire import protocol as P

VECTORS = DreamSettings(layer="block6", temporal="vectors", config=DreamConfig(octaves=2, iterations=3, step=0.02))


def test_a_restored_sequence_dreams_exactly_what_the_uninterrupted_one_does(lite0):
    """With the Vector pass every part of the state is there (detail at twice
    the size, anchor, reference, deformation, the governor's numbers)."""
    pictures = _moving_pictures(4)
    whole = SequenceDreamer()
    outputs = []
    kept = None
    for n, picture in enumerate(pictures, start=1):
        outputs.append(whole.dream(lite0, picture, VECTORS, frame=n).pixels)
        if n == 2:
            kept = whole.state()
    state = carried_state.decode(kept, (64, 128))
    assert set(state.arrays) == set(carried_state.CHANNELS)  # nothing left out
    assert state.last_frame == 2 and state.strength_limit is not None
    resumed = SequenceDreamer()
    resumed.restore(state, lite0.device)
    again = [resumed.dream(lite0, picture, VECTORS, frame=n).pixels for n, picture in enumerate(pictures[2:], 3)]
    for a, b in zip(again, outputs[2:]):
        np.testing.assert_array_equal(a, b)
    rebuilt = SequenceDreamer()  # the old way: from the written frame, not the same shot
    rebuilt.resume(lite0, pictures[1], pictures[1].with_pixels(outputs[1]))
    assert np.abs(rebuilt.dream(lite0, pictures[2], VECTORS, frame=3).pixels - outputs[2]).max() > 1e-3


def test_the_strength_floors_lift_is_kept_and_a_state_without_one_reads_none():
    source = np.zeros((1, 3, 4, 6), "<f4")
    previous = Previous(source=torch.from_numpy(source), dream=torch.from_numpy(source), lift=0.25)
    assert carried_state.decode(carried_state.encode(previous, 3)).lift == 0.25
    assert carried_state.decode(_forged()).lift == 0.0  # written before the floor
    with pytest.raises(BadState, match="lift"):
        carried_state.decode(_forged({"lift": "lots"}))


def test_a_state_continues_only_its_next_frame(lite0):
    pictures = _moving_pictures(3)
    sequence = SequenceDreamer()
    sequence.dream(lite0, pictures[0], VECTORS, frame=7)
    restored = SequenceDreamer()
    restored.restore(carried_state.decode(sequence.state()), lite0.device)
    assert not restored.needs_resume(8) and restored.needs_resume(9)


def _forged(header_changes=None, body=None, magic=carried_state.MAGIC):
    source = np.zeros((1, 3, 4, 6), "<f4")
    header = {"arrays": [{"name": "source", "shape": [1, 3, 4, 6], "dtype": "float32"},
                         {"name": "dream", "shape": [1, 3, 4, 6], "dtype": "float32"}],
              "strength_limit": None, "gain": 1.0, "last_frame": 3}
    header.update(header_changes or {})
    text = json.dumps(header).encode()
    blob = source.tobytes() * 2 if body is None else body
    return magic + struct.pack("<I", len(text)) + text + blob


@pytest.mark.parametrize("data, words", [
    (b"", "not in our format"),
    (_forged(magic=b"DREAMST0"), "not in our format"),
    (_forged()[:-4], "cut short"),
    (_forged() + b"\0\0\0\0", "bytes after"),
    (_forged({"gain": float("nan")}), "gain"),
    (_forged({"last_frame": "3"}), "frame"),
    (_forged({"arrays": [{"name": "source", "shape": [1, 3, 4, 6], "dtype": "float32"}]}, b"\0" * 288), "lacks dream"),
    (_forged({"arrays": [{"name": "source", "shape": [1, 3, 4, 6], "dtype": "float32"},
                         {"name": "dream", "shape": [1, 3, 4, 5], "dtype": "float32"}]}, b"\0" * 528), "dream is 5x4"),
    (_forged({"arrays": [{"name": "code", "shape": [1, 3, 4, 6], "dtype": "float32"}]}), "unknown array"),
    (_forged({"arrays": [{"name": "source", "shape": [1, 3, 4, 6], "dtype": "int64"}]}), "unknown array"),
    (_forged({"arrays": [{"name": "source", "shape": [1, 3, -4, 6], "dtype": "float32"}]}), "shape"),
    (_forged(body=np.full((2, 1, 3, 4, 6), np.inf, "<f4").tobytes()), "NaN or infinite"),
])
def test_forged_states_are_refused_with_a_reason(data, words):
    with pytest.raises(BadState, match=words):
        carried_state.decode(data)


def test_a_state_of_other_frames_is_refused():
    with pytest.raises(BadState, match="6x4 frames, this frame is 8x4"):
        carried_state.decode(_forged(), (4, 8))


def test_the_server_sends_the_state_and_carries_on_from_it_exactly(client):
    results = list(client.dream_many(panning(3), dict(TINY_PARAMS, temporal="flow"), job="whole",
                                     output=dict(RAW_OUT, state=True)))
    assert all(r.state for r in results)
    third = panning(3)[2]
    third.extras = {"previous_state": (results[1].state, {"format": "dream-state"})}
    (resumed,) = client.dream_many([third], dict(TINY_PARAMS, temporal="flow"), job="restarted", output=RAW_OUT)
    assert resumed.data == results[2].data and resumed.state is None
    third.extras = {"previous_state": (_forged(), {"format": "dream-state"})}
    with pytest.raises(P.ProtocolError) as err:
        next(client.dream_many([third], dict(TINY_PARAMS, temporal="flow"), job="forged", output=RAW_OUT))
    assert err.value.code == "bad_state" and f"this frame is {SHAPE[1]}x{SHAPE[0]}" in str(err.value)


def test_a_seam_frame_is_the_dream_cross_faded_into_the_other_chains(client):
    """The reply is the seam's fade; the job carries the dream itself on."""
    flow = dict(TINY_PARAMS, temporal="flow")
    first, _ = panning(2)
    (plain,) = client.dream_many([first], flow, job="plain", output=dict(RAW_OUT, state=True))
    other = bytes(255 - b for b in first.image)
    raw = {"format": "raw", "dtype": "uint8", "shape": SHAPE}
    first.extras, first.blend_share = {"blend_with": (other, raw)}, 0.25
    (blended,) = client.dream_many([first], flow, job="blended", output=dict(RAW_OUT, state=True))
    assert blended.state == plain.state  # the chain is the dream's
    dream, fade = (np.frombuffer(r.data, np.uint8).astype(np.float32) for r in (plain, blended))
    towards = np.frombuffer(other, np.uint8).astype(np.float32)
    assert 0 < np.abs(fade - dream).mean() < np.abs(towards - dream).mean()  # a quarter of the way, about
    for bad, code in (((None, 0.5), "bad_header"), ((other, 1.5), "bad_header"), ((other[:-3], 0.5),
                                                                                    "shape_mismatch")):
        first.extras = {"blend_with": (bad[0], raw)} if bad[0] is not None else {}
        first.blend_share = bad[1]
        with pytest.raises(P.ProtocolError) as err:
            next(client.dream_many([first], flow, output=RAW_OUT))
        assert err.value.code == code, err.value
