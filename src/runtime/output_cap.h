// OutputCap: caps the output of one exec. The first headBytes stream through at once; after
// that only the last tailBytes are kept, and at the end a marker line with the number of bytes
// dropped is followed by that tail. Single-threaded.
#pragma once
#include <cstddef>
#include <deque>
#include <string>
#include <string_view>

namespace kiln::runtime {

struct OutputPiece {
  std::string stream;  // "stdout" | "stderr"
  std::string data;
};

class OutputCap {
 public:
  OutputCap(size_t headBytes, size_t tailBytes) : headLeft_(headBytes), tailMax_(tailBytes) {}

  // Returns how many leading bytes of data to stream now; the rest is kept for the tail.
  size_t admit(std::string_view stream, std::string_view data);
  // What to send after the command ended: the elision marker (if anything was dropped) and the
  // kept tail, in order.
  std::deque<OutputPiece> finish();
  bool truncated() const { return elided_ > 0; }
  size_t elided() const { return elided_; }

 private:
  size_t headLeft_;
  size_t tailMax_;
  size_t tailBytes_ = 0;
  size_t elided_ = 0;
  std::deque<OutputPiece> tail_;
};

}  // namespace kiln::runtime
