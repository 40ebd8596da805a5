#pragma once
// A tagger laid out as a WD1.4 model (input [1, 448, 448, 3], NHWC, BGR 0..255; output [1, 3])
// that scores tag k by the mean of channel k / 255, built by hand as ONNX bytes (no model files in
// the tests). Used by the tagger's unit tests and the daemon's auto-tag integration test.
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

namespace kiln::test {

// A minimal protobuf writer, enough to build an ONNX model by hand for the test.
struct Proto {
  std::string bytes;
  Proto& varint(int field, uint64_t v) {
    key(field, 0);
    put_varint(v);
    return *this;
  }
  Proto& str(int field, const std::string& s) {
    key(field, 2);
    put_varint(s.size());
    bytes += s;
    return *this;
  }
  Proto& msg(int field, const Proto& m) { return str(field, m.bytes); }

 private:
  void key(int field, int wire) { put_varint(static_cast<uint64_t>(field) << 3 | wire); }
  void put_varint(uint64_t v) {
    do {
      uint8_t b = v & 0x7F;
      v >>= 7;
      if (v) b |= 0x80;
      bytes.push_back(static_cast<char>(b));
    } while (v);
  }
};

inline Proto tensor_type(std::initializer_list<int64_t> dims) {
  Proto shape;
  for (int64_t d : dims) shape.msg(1, Proto().varint(1, static_cast<uint64_t>(d)));  // Dimension.dim_value
  return Proto().msg(1, Proto().varint(1, 1 /*FLOAT*/).msg(2, shape));             // TypeProto.tensor_type
}

inline Proto node(const std::vector<std::string>& in, const std::string& out, const std::string& op) {
  Proto n;
  for (const auto& i : in) n.str(1, i);
  return n.str(2, out).str(4, op);
}

// A "tagger" that scores each tag by the mean of one input channel / 255, laid out as a WD1.4
// model: input [1, 448, 448, 3] (NHWC, BGR 0..255), output [1, 3]. It checks the whole path:
// preprocessing, channel order, NHWC layout, thresholds and CSV mapping.
inline std::string tiny_tagger_onnx() {
  Proto transpose = node({"x"}, "t", "Transpose");
  Proto perm = Proto().str(1, "perm").varint(20, 7 /*INTS*/);
  for (int64_t p : {0, 3, 1, 2}) perm.varint(8, static_cast<uint64_t>(p));
  transpose.msg(5, perm);
  const float scale = 1.0f / 255.0f;
  std::string raw(4, '\0');
  std::memcpy(raw.data(), &scale, 4);
  Proto initializer = Proto().varint(1, 1).varint(2, 1 /*FLOAT*/).str(8, "scale").str(9, raw);
  Proto graph;
  graph.msg(1, transpose)
      .msg(1, node({"t"}, "p", "GlobalAveragePool"))
      .msg(1, node({"p"}, "f", "Flatten"))
      .msg(1, node({"f", "scale"}, "probs", "Mul"))
      .str(2, "tiny_tagger")
      .msg(5, initializer)
      .msg(11, Proto().str(1, "x").msg(2, tensor_type({1, 448, 448, 3})))
      .msg(12, Proto().str(1, "probs").msg(2, tensor_type({1, 3})));
  return Proto().varint(1, 7).str(2, "kiln-test").msg(7, graph).msg(8, Proto().str(1, "").varint(2, 13)).bytes;
}

}  // namespace kiln::test
