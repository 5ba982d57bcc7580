#include "runtime/output_cap.h"

#include <algorithm>

namespace kiln::runtime {

size_t OutputCap::admit(std::string_view stream, std::string_view data) {
  size_t head = std::min(headLeft_, data.size());
  headLeft_ -= head;
  data.remove_prefix(head);
  if (data.empty()) return head;
  if (!tail_.empty() && tail_.back().stream == stream) {
    tail_.back().data.append(data);
  } else {
    tail_.push_back({std::string(stream), std::string(data)});
  }
  tailBytes_ += data.size();
  while (tailBytes_ > tailMax_) {
    size_t excess = tailBytes_ - tailMax_;
    std::string& front = tail_.front().data;
    size_t drop = std::min(excess, front.size());
    front.erase(0, drop);
    tailBytes_ -= drop;
    elided_ += drop;
    if (front.empty()) tail_.pop_front();
  }
  return head;
}

std::deque<OutputPiece> OutputCap::finish() {
  std::deque<OutputPiece> out = std::move(tail_);
  tail_.clear();
  tailBytes_ = 0;
  if (elided_ > 0) {
    out.push_front({"stdout", "\n[... " + std::to_string(elided_) + " bytes elided ...]\n"});
  }
  return out;
}

}  // namespace kiln::runtime
