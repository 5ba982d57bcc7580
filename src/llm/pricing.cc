#include "llm/pricing.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/files.h"

namespace kiln::llm {

using nlohmann::json;

PriceTable PriceTable::defaults() {
  PriceTable t;
  struct Row {
    const char* model;
    double in, out;
  };
  static const Row kRows[] = {
      {"gpt-4o", 2.50, 10.00},
      {"gpt-4o-mini", 0.15, 0.60},
      {"gpt-4.1", 2.00, 8.00},
      {"gpt-4.1-mini", 0.40, 1.60},
      {"gpt-4.1-nano", 0.10, 0.40},
      {"gpt-4-turbo", 10.00, 30.00},
      {"gpt-3.5-turbo", 0.50, 1.50},
      {"gpt-5", 1.25, 10.00},
      {"gpt-5-mini", 0.25, 2.00},
      {"gpt-5-nano", 0.05, 0.40},
      {"o1", 15.00, 60.00},
      {"o1-mini", 1.10, 4.40},
      {"o3", 2.00, 8.00},
      {"o3-mini", 1.10, 4.40},
      {"o4-mini", 1.10, 4.40},
      {"claude-3-haiku", 0.25, 1.25},
      {"claude-3-5-haiku", 0.80, 4.00},
      {"claude-haiku-4-5", 1.00, 5.00},
      {"claude-3-5-sonnet", 3.00, 15.00},
      {"claude-3-7-sonnet", 3.00, 15.00},
      {"claude-sonnet-4", 3.00, 15.00},
      {"claude-sonnet-4-5", 3.00, 15.00},
      {"claude-3-opus", 15.00, 75.00},
      {"claude-opus-4", 15.00, 75.00},
      {"claude-opus-4-1", 15.00, 75.00},
      {"claude-opus-4-5", 5.00, 25.00},
      // Unknown models are charged like a mid-range model, so caps still bite; set "*" to 0 in
      // $KILN_PRICES for free local servers.
      {"*", 3.00, 15.00},
  };
  for (const Row& r : kRows) t.prices_[r.model] = Price{r.in, r.out};
  return t;
}

Status PriceTable::mergeJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return invalidArgument("price table: not a JSON object");
  for (auto& [model, v] : j.items()) {
    if (!v.is_object() || !v.contains("in") || !v.contains("out") || !v["in"].is_number() ||
        !v["out"].is_number())
      return invalidArgument("price table: '" + model + "' needs numbers \"in\" and \"out\"");
    prices_[model] = Price{v["in"].get<double>(), v["out"].get<double>()};
  }
  return Status::ok();
}

Status PriceTable::mergeFile(const std::string& path) {
  Result<std::string> text = readFile(path);
  if (!text) return notFound("price table: cannot read " + path);
  return mergeJson(*text).withContext(path);
}

Price PriceTable::lookup(const std::string& model) const {
  // OpenRouter-style names ("openai/gpt-4o") are priced by the model part.
  std::string name = model.substr(model.find('/') == std::string::npos ? 0 : model.rfind('/') + 1);
  for (const std::string& key : {model, name}) {
    if (auto it = prices_.find(key); it != prices_.end()) return it->second;
  }
  const Price* best = nullptr;
  size_t bestLen = 0;
  for (const auto& [key, p] : prices_) {
    if (key != "*" && key.size() > bestLen && name.compare(0, key.size(), key) == 0) {
      best = &p;
      bestLen = key.size();
    }
  }
  if (best) return *best;
  auto it = prices_.find("*");
  return it == prices_.end() ? Price{} : it->second;
}

double PriceTable::costUsd(const std::string& model, int64_t tokensIn, int64_t tokensOut) const {
  Price p = lookup(model);
  return (static_cast<double>(tokensIn) * p.inPerMillion +
          static_cast<double>(tokensOut) * p.outPerMillion) /
         1e6;
}

const PriceTable& globalPrices() {
  static const PriceTable kTable = [] {
    PriceTable t = PriceTable::defaults();
    if (const char* path = std::getenv("KILN_PRICES"); path && *path) {
      Status st = t.mergeFile(path);
      if (!st.isOk()) spdlog::warn("KILN_PRICES ignored: {}", st.toString());
    }
    return t;
  }();
  return kTable;
}

}  // namespace kiln::llm
