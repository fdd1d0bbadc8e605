"""Several frames in flight on one connection (``DreamClient.dream_many``),
against the shared real server process."""
import numpy as np
import pytest
from conftest import TINY_PARAMS, dream_raw, raw_frame

from dream_core.wire import protocol as P
from dream_core.wire.client import Cancelled, FrameRequest

SHAPE = [40, 48, 3]
COHERENT = dict(TINY_PARAMS, temporal="blend")  # each frame depends on the one before


def frames(count, first_seed=0, bad_at=None):
    for i in range(count):
        if i == bad_at:
            yield FrameRequest(b"\x89PNG garbage", "png", frame=i + 1)
        else:
            yield FrameRequest(raw_frame(*SHAPE[:2], first_seed + i), "raw", frame=i + 1,
                               raw={"dtype": "uint8", "shape": SHAPE})


RAW_OUT = {"format": "raw", "dtype": "uint8"}
PANNING = dict(TINY_PARAMS, temporal="flow", iterations=4, step=0.05)


def panning(count, shift=2):
    """Frames of one picture moving right by ``shift`` px a frame: what flow carries."""
    width = SHAPE[1] + shift * count
    big = np.frombuffer(raw_frame(SHAPE[0], width, 5), np.uint8).reshape(SHAPE[0], width, 3)
    return [FrameRequest(big[:, shift * (count - i):shift * (count - i) + SHAPE[1]].tobytes(), "raw", frame=i + 1,
                         raw={"dtype": "uint8", "shape": SHAPE}) for i in range(count)]


def test_frames_in_flight_come_back_in_order_and_coherent(client):
    one_by_one = [dream_raw(client, seed=i, params=COHERENT, job="serial", frame=i + 1).data for i in range(4)]
    events = []
    results = list(client.dream_many(frames(4), COHERENT, job="piped", output=RAW_OUT, in_flight=3,
                                     progress=events.append))
    assert [r.header["frame"] for r in results] == [1, 2, 3, 4]
    # bit-identical to one frame at a time: the job's chain was kept in order
    assert [r.data for r in results] == one_by_one
    assert {e["frame"] for e in events if e["event"] == "progress"} == {1, 2, 3, 4}
    assert client.hello()["max_in_flight"] == P.MAX_IN_FLIGHT
    assert client.hello()["heartbeat"] == 0.25  # the fixture's --heartbeat


def test_a_bad_frame_fails_alone_in_its_turn(client):
    stream = client.dream_many(frames(4, bad_at=2), TINY_PARAMS, output=RAW_OUT, in_flight=4)
    assert next(stream).header["frame"] == 1
    assert next(stream).header["frame"] == 2
    with pytest.raises(P.ProtocolError) as err:
        next(stream)
    assert err.value.code == "bad_image"
    # the frame after it was cancelled and drained: the connection is clean
    assert client.hello()["protocol"] == P.PROTOCOL
    assert dream_raw(client).data


def test_leaving_early_cancels_what_is_in_flight(client):
    slow = dict(TINY_PARAMS, iterations=40)
    for result in client.dream_many(frames(4), slow, output=RAW_OUT, in_flight=4):
        assert result.header["frame"] == 1
        break  # the generator closes: frames 2-4 are cancelled and their replies read
    assert dream_raw(client).data


def test_cancel_stops_every_frame_in_flight(client):
    with pytest.raises(Cancelled):
        list(client.dream_many(frames(3), dict(TINY_PARAMS, iterations=200), output=RAW_OUT, in_flight=3,
                               should_cancel=lambda: True))
    assert dream_raw(client).data


def test_more_than_the_limit_is_refused_not_queued(client):
    """A client that ignores max_in_flight gets 'busy' for the excess frame."""
    header = {"op": "dream", "params": dict(TINY_PARAMS, iterations=500),
              "payloads": [{"name": "image", "format": "raw", "dtype": "uint8", "shape": SHAPE}],
              "output": RAW_OUT}
    ids = list(range(1000, 1001 + P.MAX_IN_FLIGHT))
    for request_id in ids:
        P.send_message(client.conn, dict(header, id=request_id), [raw_frame(*SHAPE[:2])])
    finals = {}
    while len(finals) < len(ids):
        reply = P.recv_header(client.conn)
        P.recv_payloads(client.conn, reply, 1 << 20)
        if reply["event"] in ("result", "error") and reply["id"] in ids:
            finals[reply["id"]] = reply
            if reply.get("code") == "busy":
                P.send_message(client.conn, {"op": "cancel", "id": 1})  # no job: this connection's frames
    assert finals[ids[-1]]["code"] == "busy"
    assert all(finals[i].get("code") == "cancelled" for i in ids[:-1])
    assert dream_raw(client).data


def test_other_requests_are_answered_while_frames_run(client):
    """hello is answered at once although a frame is queued before it."""
    header = {"op": "dream", "id": 1, "params": dict(TINY_PARAMS, iterations=60),
              "payloads": [{"name": "image", "format": "raw", "dtype": "uint8", "shape": SHAPE}],
              "output": RAW_OUT}
    P.send_message(client.conn, header, [raw_frame(*SHAPE[:2])])
    P.send_message(client.conn, {"op": "hello", "id": 2})
    order = []
    while 1 not in order:
        reply = P.recv_header(client.conn)
        P.recv_payloads(client.conn, reply, 1 << 20)
        if reply["event"] in ("result", "error"):
            order.append(reply["id"])
    assert order == [2, 1]


def test_bad_output_is_refused_before_dreaming(client):
    with pytest.raises(P.ProtocolError) as err:
        client.dream(raw_frame(*SHAPE[:2]), "raw", dict(TINY_PARAMS, iterations=1000),
                     raw={"dtype": "uint8", "shape": SHAPE}, output={"format": "gif"})
    assert err.value.code == "bad_header" and "output format" in err.value.message


def test_frames_through_the_stream_match_single_requests(client):
    single = np.frombuffer(dream_raw(client, seed=7).data, np.uint8)
    streamed = next(client.dream_many(frames(1, first_seed=7), TINY_PARAMS, output=RAW_OUT))
    assert np.array_equal(np.frombuffer(streamed.data, np.uint8), single)


def test_a_queued_frame_hears_its_place_in_the_queue(client):
    """A frame sent behind a long one is told at once that it is queued, and
    where; no timing involved: the first frame cannot finish before we cancel."""
    events = []

    def queued_seen() -> bool:
        return any(e["event"] == "heartbeat" and e["frame"] == 2 and e["state"] == "queued" for e in events)

    with pytest.raises(Cancelled):
        list(client.dream_many(frames(2), dict(TINY_PARAMS, iterations=1000), output=RAW_OUT, in_flight=2,
                               progress=events.append, should_cancel=queued_seen))
    queued = [e for e in events if e["event"] == "heartbeat" and e["frame"] == 2]
    assert queued[0]["state"] == "queued" and queued[0]["position"] >= 1
    assert dream_raw(client).data


def test_a_lost_job_resumes_from_the_frames_the_client_sends(client):
    """After a server restart the job is gone; the client sends the frame
    before's render and dream and the sequence carries on coherently."""
    whole = [np.frombuffer(r.data, np.uint8).astype(np.float32)
             for r in client.dream_many(panning(3), PANNING, job="whole", output=RAW_OUT)]
    raw = {"format": "raw", "dtype": "uint8", "shape": SHAPE}
    _, second, third = panning(3)
    alone = np.frombuffer(next(client.dream_many([third], PANNING, job="alone", output=RAW_OUT)).data, np.uint8)
    third.extras = {"previous_render": (second.image, raw),
                    "previous_dream": (whole[1].astype(np.uint8).tobytes(), raw)}
    resumed = np.frombuffer(next(client.dream_many([third], PANNING, job="restarted", output=RAW_OUT)).data,
                            np.uint8)
    gap_resumed = np.abs(resumed.astype(np.float32) - whole[2]).mean()
    gap_alone = np.abs(alone.astype(np.float32) - whole[2]).mean()
    assert gap_resumed < 0.25 * gap_alone, (gap_resumed, gap_alone)

    half = dict(third.extras)
    del half["previous_dream"]
    third.extras = half
    with pytest.raises(P.ProtocolError, match="go together"):
        next(client.dream_many([third], PANNING, output=RAW_OUT))
    third.extras = {"previous_render": (raw_frame(8, 8), dict(raw, shape=[8, 8, 3])),
                    "previous_dream": (raw_frame(8, 8), dict(raw, shape=[8, 8, 3]))}
    with pytest.raises(P.ProtocolError) as err:
        next(client.dream_many([third], PANNING, output=RAW_OUT))
    assert err.value.code == "shape_mismatch"


def test_a_layer_index_picks_the_models_layer_by_position(client):
    """The add-on keyframes depth as an index; the server knows each model's layers."""
    by_name = dream_raw(client, params=dict(TINY_PARAMS, layer="block2")).data
    assert dream_raw(client, params=dict(TINY_PARAMS, layer_index=3)).data == by_name  # stem, block0, 1, 2
    last = dream_raw(client, params=dict(TINY_PARAMS, layer="head")).data
    assert dream_raw(client, params=dict(TINY_PARAMS, layer_index=999)).data == last  # past the end: the last
    with pytest.raises(P.ProtocolError) as err:
        dream_raw(client, params=dict(TINY_PARAMS, layer_index=-2))
    assert err.value.code == "bad_params"
