"""Property-based abuse of the server: whatever a broken client or an
attacker sends, the reply is an error or a closed connection, and a fresh
client still gets a correct dream afterwards."""
import json
import socket

import pytest
from conftest import dream_raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dream_core.wire import protocol as P
from dream_core.wire.client import DreamClient

pytestmark = pytest.mark.slow  # hundreds of requests, each followed by a dream that proves the server well

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "v": st.sampled_from([P.PROTOCOL] * 3 + [0, 1, 3, "2", None]),
        # shutdown is left out: an authenticated client may legitimately stop the server
        "op": st.sampled_from([op for op in P.OPS if op != "shutdown"] + ["", "drop", None, 5]),
        "id": json_values,
        "job": json_values,
        "frame": json_values,
        "params": json_values | st.fixed_dictionaries({}, optional={
            "octaves": json_values, "layer": json_values, "model": json_values, "step": json_values}),
        "payloads": st.lists(st.fixed_dictionaries({}, optional={
            "name": st.sampled_from(["image", "vectors", "mask", "guide", "x"]),
            "format": st.sampled_from(list(P.IMAGE_FORMATS) + ["gif", 3]),
            "dtype": st.sampled_from(list(P.RAW_DTYPES) + ["int64"]),
            "shape": st.lists(st.integers(-3, 70), max_size=4)}), max_size=3) | json_values,
        "output": json_values,
    },
)


@pytest.fixture(scope="module")
def reference(server):
    with DreamClient(server.address, server.token) as c:
        return dream_raw(c, seed=11).data


def _healthy(server, reference):
    with DreamClient(server.address, server.token) as c:
        assert dream_raw(c, seed=11).data == reference


def _drain(conn):
    """Reads replies until the server closes or goes quiet; each must be a
    well-formed event."""
    while conn.poll(3):
        try:
            reply = P.recv_header(conn)
        except (EOFError, OSError):
            return
        assert reply.get("event") in ("error", "result", "progress", "heartbeat"), reply
        if reply.get("event") == "error":
            assert reply["code"] in P.ERRORS and reply["message"]
        for _ in reply.get("payloads", []):
            conn.recv_bytes()
        if reply.get("event") in ("error", "result"):
            return


def test_random_requests_get_an_error_or_a_close(server, reference):
    cases = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(header=headers, payload=st.binary(max_size=600))
    def case(header, payload):
        cases.append(header)
        conn = P.connect(server.address, server.token)
        try:
            conn.send_bytes(json.dumps(header).encode())
            declared = header.get("payloads") if isinstance(header.get("payloads"), list) else []
            for _ in declared:
                conn.send_bytes(payload)
            _drain(conn)
        except (OSError, EOFError):
            pass
        finally:
            conn.close()
        _healthy(server, reference)

    case()
    assert len(cases) >= 100  # hypothesis really ran the cases, whatever ran before


def test_random_bytes_before_authentication(server, reference):
    cases = []

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(junk=st.binary(min_size=1, max_size=2000))
    def case(junk):
        cases.append(junk)
        family, addr = P.parse_address(server.address)
        with socket.create_connection(addr, timeout=10) as sock:
            try:
                sock.sendall(junk)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(4096):
                    pass
            except OSError:
                pass
        _healthy(server, reference)

    case()
    assert len(cases) >= 50
