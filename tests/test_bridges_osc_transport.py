"""Our OSC encoder against python-osc's builders (byte-for-byte), and bundle packing bounds."""

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from livedance.bridges.osc_transport import osc_float_messages, osc_message, osc_string, pack_bundles


def reference(address, args):
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build()


@pytest.mark.parametrize(
    "address, args",
    [
        ("/VMC/Ext/Bone/Pos", ["LeftIndexIntermediate", 0.1, -2.5, 3.0, 0.0, 0.5, -0.5, 1.0]),
        ("/VMC/Ext/OK", [1]),
        ("/VMC/Ext/Blend/Apply", []),
        ("/abc", ["", "abc", "abcd", -7, 1e-30, 123456.789]),
    ],
)
def test_message_bytes_match_python_osc(address, args):
    ours = osc_message(address, args)
    assert ours == reference(address, args).dgram
    decoded = OscMessage(ours)
    assert decoded.address == address
    assert decoded.params == pytest.approx(reference(address, args).params)


def test_vectorized_messages_match_one_by_one():
    vals = np.random.default_rng(0).normal(size=(5, 7))
    prefixes = [osc_string("/VMC/Ext/Bone/Pos") + osc_string(",sfffffff") + osc_string(n) for n in "ABCDE"]
    fast = osc_float_messages(prefixes, vals)
    slow = [osc_message("/VMC/Ext/Bone/Pos", [n, *row]) for n, row in zip("ABCDE", vals)]
    assert fast == slow
    assert osc_float_messages([osc_string("/x") + osc_string(",f")], np.array([[2.0]])) == [osc_message("/x", [2.0])]


def test_bundle_bytes_match_python_osc():
    msgs = [osc_message("/a", [1.0]), osc_message("/bb", ["s", 2])]
    b = OscBundleBuilder(IMMEDIATELY)
    for m in msgs:
        b.add_content(OscMessage(m))
    assert pack_bundles(msgs, 1400) == [b.build().dgram]


def test_packing_bounds_order_and_oversize():
    msgs = [osc_message(f"/m/{i}", [float(i)] * (i % 5)) for i in range(200)]
    dgrams = pack_bundles(msgs, 256)
    assert all(len(d) <= 256 for d in dgrams)
    out = [m.address for d in dgrams for m in OscBundle(d)]
    assert out == [f"/m/{i}" for i in range(200)]
    big = osc_message("/big", [0.0] * 100)
    dg = pack_bundles([osc_message("/s", [1]), big, osc_message("/t", [2])], 128)
    assert len(dg) == 3 and OscBundle(dg[1]).content(0).address == "/big"
    assert pack_bundles([], 1400) == []


@pytest.mark.parametrize(
    "args, needle",
    [
        (["a\0b"], "NUL"),
        ([2**31], "int32"),
        ([-2**31 - 1], "int32"),
        ([np.int64(2**40)], "int32"),
        ([None], "NoneType"),
        ([[1.0, 2.0]], "list"),
        ([1e39], "float32"),
    ],
)
def test_bad_arguments_raise_value_error(args, needle):
    with pytest.raises(ValueError, match=needle):
        osc_message("/x", args)


def test_bad_strings_raise_value_error():
    with pytest.raises(ValueError, match="NUL"):
        osc_message("/a\0b", [])
    with pytest.raises(ValueError, match="NUL"):
        osc_string("name\0")
    with pytest.raises(ValueError, match="str"):
        osc_string(None)
    assert OscMessage(osc_message("/x", [2**31 - 1, -2**31, np.float32(0.5)])).params == [2**31 - 1, -2**31, 0.5]


def test_ipv4_sockets_may_broadcast():
    """VJ rigs send OSC to 255.255.255.255 or a subnet's .255; without SO_BROADCAST Linux refuses with EACCES."""
    import socket

    from livedance.bridges.osc_transport import OSCUDPTransport

    with OSCUDPTransport("255.255.255.255", 39539) as tx:  # the option only: no datagram leaves for the LAN
        assert tx._sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) != 0
    with OSCUDPTransport("127.255.255.255", 39539) as tx:  # the loopback net's broadcast: sent, never refused
        tx.send_messages([osc_message("/x", [1.0])])
        assert "PermissionError" not in (tx.stats.last_error or "")


@pytest.mark.parametrize("port, ok", [
    (np.int64(39539), True), (39539.0, True), (np.float64(39539.0), True), (" 39539 ", True),
    (True, False), (39539.5, False), (float("nan"), False), (float("inf"), False), (None, False),
])
def test_port_types(port, ok):
    from livedance.bridges.osc_transport import validate_endpoint
    from livedance.errors import ConfigError

    if ok:
        assert validate_endpoint("127.0.0.1", port, "VMC") == ("127.0.0.1", 39539)
    else:
        with pytest.raises(ConfigError, match="VMC port"):
            validate_endpoint("127.0.0.1", port, "VMC")


def test_a_name_with_ipv4_and_ipv6_addresses_is_sent_to_over_ipv4(monkeypatch):
    """localhost may resolve to ::1 first; VMC receivers (EVMC4U, VSeeFace, Warudo) listen on IPv4."""
    import socket

    from livedance.bridges.osc_transport import preferred_address

    v6 = (socket.AF_INET6, socket.SOCK_DGRAM, 17, "", ("::1", 39539, 0, 0))
    v4 = (socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("127.0.0.1", 39539))
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [v6, v4])
    assert preferred_address("localhost", 39539) == v4
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [v6])
    assert preferred_address("ip6-localhost", 39539) == v6  # only IPv6: IPv6


def test_a_failed_connect_is_retried_and_is_not_a_send_error(monkeypatch, caplog):
    """No route at start-up: the transport sends with sendto meanwhile and connects on a later send, after
    which a receiver that is not there shows up as refused sends (ICMP port unreachable on a connected socket)."""
    import socket
    import time

    from fakes_io import free_udp_port
    from livedance.bridges.osc_transport import OSCUDPTransport

    real = socket.socket.connect
    calls = []

    def flaky(self, addr):
        calls.append(addr)
        if len(calls) == 1:
            raise OSError(101, "Network is unreachable")
        return real(self, addr)

    monkeypatch.setattr(socket.socket, "connect", flaky)
    with OSCUDPTransport("127.0.0.1", free_udp_port()) as tx:
        assert not tx._connected and tx.stats.send_errors == 0 and "unreachable" in tx.stats.last_error
        tx.send_messages([osc_message("/x", [1.0])])  # within RECONNECT_S: no new attempt
        assert len(calls) == 1 and not tx._connected
        tx._connect_after = time.monotonic()  # (a second later)
        for _ in range(20):  # the first send may get through before the ICMP reply; later ones are refused
            tx.send_messages([osc_message("/x", [1.0])])
            time.sleep(0.005)
        assert len(calls) == 2 and tx._connected
        assert "ConnectionRefusedError" in tx.stats.last_error and tx.stats.send_errors > 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and "cannot connect" in warnings[0]  # the connect's own warning, then the send's
    assert "nothing is listening" in warnings[1]
