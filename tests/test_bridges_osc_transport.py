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
