// PriceTable: USD per million tokens, input and output, per model. Lookup is by exact name, then
// the longest known prefix (dated snapshots such as gpt-4o-2024-08-06), then the "*" fallback.
// Immutable after loading; thread-safe to read.
#pragma once
#include <map>
#include <string>

#include "common/result.h"

namespace kiln::llm {

struct Price {
  double inPerMillion = 0;
  double outPerMillion = 0;
};

class PriceTable {
 public:
  // Built-in list prices of common OpenAI and Anthropic models, with a "*" fallback.
  static PriceTable defaults();

  // Merges overrides from a JSON object {"model": {"in": 2.5, "out": 10}, "*": {...}}.
  Status mergeJson(const std::string& text);
  Status mergeFile(const std::string& path);

  Price lookup(const std::string& model) const;
  double costUsd(const std::string& model, int64_t tokensIn, int64_t tokensOut) const;
  void set(const std::string& model, Price p) { prices_[model] = p; }

 private:
  std::map<std::string, Price> prices_;
};

// The process-wide table: defaults, then the file named by $KILN_PRICES when set (a bad file is
// logged and ignored). Loaded once.
const PriceTable& globalPrices();

}  // namespace kiln::llm
