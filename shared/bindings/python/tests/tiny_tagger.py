"""The test tagger of tests/unit/studio/tiny_tagger.h, in Python: an ONNX model laid out as a WD1.4
tagger (input [1, 448, 448, 3], NHWC, BGR 0..255; output [1, 3]) that scores tag k by the mean of
channel k / 255, built by hand as protobuf bytes (no model files in the tests), and a
selected_tags.csv naming the three tags. install() puts both where kilnd looks for its default
tagger, <data dir>/taggers/wd14/, so auto-tagging runs for real in the host tests."""

import os
import struct


def _varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class Proto:
    def __init__(self):
        self.bytes = b""

    def _key(self, field, wire):
        self.bytes += _varint(field << 3 | wire)

    def varint(self, field, v):
        self._key(field, 0)
        self.bytes += _varint(v)
        return self

    def str(self, field, s):
        data = s.encode() if isinstance(s, str) else s
        self._key(field, 2)
        self.bytes += _varint(len(data)) + data
        return self

    def msg(self, field, m):
        return self.str(field, m.bytes)


def _tensor_type(dims):
    shape = Proto()
    for d in dims:
        shape.msg(1, Proto().varint(1, d))                        # Dimension.dim_value
    return Proto().msg(1, Proto().varint(1, 1).msg(2, shape))     # TypeProto.tensor_type: FLOAT


def _node(inputs, output, op):
    n = Proto()
    for i in inputs:
        n.str(1, i)
    return n.str(2, output).str(4, op)


def onnx_bytes():
    transpose = _node(["x"], "t", "Transpose")
    perm = Proto().str(1, "perm").varint(20, 7)  # INTS
    for p in (0, 3, 1, 2):
        perm.varint(8, p)
    transpose.msg(5, perm)
    initializer = Proto().varint(1, 1).varint(2, 1).str(8, "scale").str(9, struct.pack("<f", 1.0 / 255.0))
    graph = Proto()
    graph.msg(1, transpose).msg(1, _node(["t"], "p", "GlobalAveragePool")).msg(1, _node(["p"], "f", "Flatten"))
    graph.msg(1, _node(["f", "scale"], "probs", "Mul")).str(2, "tiny_tagger").msg(5, initializer)
    graph.msg(11, Proto().str(1, "x").msg(2, _tensor_type([1, 448, 448, 3])))
    graph.msg(12, Proto().str(1, "probs").msg(2, _tensor_type([1, 3])))
    return Proto().varint(1, 7).str(2, "kiln-test").msg(7, graph).msg(8, Proto().str(1, "").varint(2, 13)).bytes


# Channel 0 (blue) scores blue_sky, 1 (green) a rating (left out of captions), 2 (red) red_dress.
SELECTED_TAGS = "tag_id,name,category,count\n1,blue_sky,0,5\n2,sensitive,9,5\n3,red_dress,0,5\n"


def install(data_dir, name="wd14"):
    folder = os.path.join(data_dir, "taggers", name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "model.onnx"), "wb") as f:
        f.write(onnx_bytes())
    with open(os.path.join(folder, "selected_tags.csv"), "w") as f:
        f.write(SELECTED_TAGS)
    return folder
