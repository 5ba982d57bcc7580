#include "cli/render.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sstream>
#include <vector>

namespace kiln::cli {

namespace {

constexpr const char* kDim = "\033[2m";
constexpr const char* kBold = "\033[1m";
constexpr const char* kRed = "\033[31m";
constexpr const char* kGreen = "\033[32m";
constexpr const char* kYellow = "\033[33m";
constexpr const char* kCyan = "\033[36m";
constexpr const char* kReset = "\033[0m";

std::string paint(const RenderStyle& style, const char* code, const std::string& s) {
  if (!style.color) return s;
  return std::string(code) + s + kReset;
}

std::string str(const json& j, const char* key, const std::string& fallback = "") {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

double num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

std::vector<std::string> splitLines(const std::string& s) {
  std::vector<std::string> lines;
  std::string cur;
  for (char c : s) {
    if (c == '\n') {
      lines.push_back(std::move(cur));
      cur.clear();
    } else if (c != '\r') {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) lines.push_back(std::move(cur));
  return lines;
}

std::string oneLine(const std::string& s) {
  std::string out;
  for (char c : s) out.push_back(c == '\n' || c == '\r' || c == '\t' ? ' ' : c);
  return out;
}

// File contents and commit messages: the first line stands for the rest.
std::string firstLine(const std::string& s) {
  size_t nl = s.find('\n');
  if (nl == std::string::npos) return s;
  return s.substr(0, nl) + "…";
}

const char* statusColor(const std::string& status) {
  if (status == "COMPLETED") return kGreen;
  if (status == "FAILED" || status == "STOPPED") return kRed;
  if (status == "PAUSED") return kYellow;
  return kCyan;
}

std::string renderTerminal(const json& p, const RenderStyle& style) {
  bool isErr = str(p, "stream") == "stderr";
  std::string out;
  for (const auto& line : splitLines(str(p, "data"))) {
    std::string text = "    " + truncate(line, style.maxLineWidth);
    out += paint(style, isErr ? kRed : kDim, text) + "\n";
  }
  return out;
}

std::string renderDone(const json& p, const RenderStyle& style) {
  std::string status = normalizeStatus(str(p, "status"));
  std::string line = "done: " + status;
  if (p.contains("error") && !p["error"].is_null()) {
    const json& e = p["error"];
    line += e.is_object() ? " (" + str(e, "code") + ": " + str(e, "message") + ")"
                          : " (" + str(p, "error") + ")";
  }
  return paint(style, statusColor(status), line) + "\n";
}

std::string renderQuestion(const json& p, const RenderStyle& style) {
  std::string id = style.jobId.empty() ? "<job-id>" : style.jobId;
  if (str(p, "kind") == "approval") {
    std::string out = paint(style, kYellow, "? approval needed: ") +
                      paint(style, kBold, str(p, "question")) + "\n";
    if (!str(p, "summary").empty()) out += "  summary: " + str(p, "summary") + "\n";
    out += "  see the work: kiln diff " + id + "\n";
    out += "  approve with: kiln approve " + id + "   or refuse: kiln reply " + id +
           " \"what to change\"\n";
    return out;
  }
  std::string out =
      paint(style, kYellow, "? the agent asks: ") + paint(style, kBold, str(p, "question")) + "\n";
  out += "  answer with: kiln reply " + id + " \"your answer\"\n";
  return out;
}

}  // namespace

std::string truncate(const std::string& s, size_t width) {
  if (s.size() <= width || width < 2) return s;
  size_t cut = width - 1;
  // Back off continuation bytes so a multi-byte character is never split.
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "…";
}

std::string summarizeArgs(const json& args, size_t maxWidth) {
  if (args.is_string()) return truncate(oneLine(args.get<std::string>()), maxWidth);
  if (!args.is_object()) return args.is_null() ? "" : truncate(args.dump(), maxWidth);
  for (const char* key : {"command", "cmd"}) {
    if (args.contains(key) && args[key].is_string()) {
      return truncate(oneLine(args[key].get<std::string>()), maxWidth);
    }
  }
  std::string out;
  for (const auto& [k, v] : args.items()) {
    if (!out.empty()) out += " ";
    out += k + "=" + (v.is_string() ? firstLine(v.get<std::string>()) : v.dump());
  }
  return truncate(out, maxWidth);
}

std::string renderStep(const json& step, const RenderStyle& style) {
  std::string n = str(step, "stepNumber", "?");
  std::string tool = str(step, "toolCalled");
  json args = step.contains("toolArguments") ? step["toolArguments"] : json();
  std::string head = paint(style, kBold, "[step " + n + "]");
  if (tool.empty() && str(step, "phase") == "instructions") {
    // The repo's AGENTS.md files, given to the model: their paths, not their text.
    std::string files;
    if (args.is_object() && args.contains("files") && args["files"].is_array()) {
      for (const auto& f : args["files"])
        if (f.is_string()) files += " " + f.get<std::string>();
    }
    return head + " " + paint(style, kCyan, "instructions") +
           truncate(files, style.maxLineWidth) + "\n";
  }
  if (!tool.empty()) head += " " + paint(style, kCyan, tool);
  if (step.value("refusal", false)) head += " " + paint(style, kRed, "refused");
  std::string a = summarizeArgs(args, style.maxLineWidth);
  if (!a.empty()) head += " " + a;
  double usd = num(step, "usd");
  if (usd > 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, " ($%.4f)", usd);
    head += paint(style, kDim, buf);
  }
  std::string out = head + "\n";
  std::string thought = str(step, "plannerThought");
  if (!thought.empty()) {
    out += paint(style, kDim, "  » " + truncate(oneLine(thought), style.maxLineWidth)) + "\n";
  }
  auto lines = splitLines(str(step, "toolOutput"));
  int shown = std::min<int>(style.previewLines, static_cast<int>(lines.size()));
  for (int i = 0; i < shown; ++i) {
    out += paint(style, kDim, "  │ " + truncate(lines[i], style.maxLineWidth)) + "\n";
  }
  if (static_cast<int>(lines.size()) > shown) {
    out +=
        paint(style, kDim, "  │ … " + std::to_string(lines.size() - shown) + " more lines") + "\n";
  }
  return out;
}

std::string renderEvent(const std::string& type, const json& p, const RenderStyle& style) {
  if (type == "status") {
    std::string s = normalizeStatus(str(p, "status"));
    return paint(style, statusColor(s), "● " + s) + "\n";
  }
  if (type == "step") return renderStep(p, style);
  if (type == "terminal") return renderTerminal(p, style);
  if (type == "question") return renderQuestion(p, style);
  if (type == "diff") {
    size_t files = 0;
    for (const auto& line : splitLines(str(p, "diff"))) files += line.rfind("diff --git", 0) == 0;
    if (files == 0) return "";
    return paint(style, kDim, "  workspace changed (" + std::to_string(files) + " files)") + "\n";
  }
  if (type == "error") {
    return paint(style, kRed, "error: " + str(p, "code") + ": " + str(p, "message")) + "\n";
  }
  if (type == "done") return renderDone(p, style);
  if (type == "verify") {
    if (p.value("passed", false)) return paint(style, kGreen, "✓ verify passed") + "\n";
    auto lines = splitLines(str(p, "outputTail"));
    std::string last = lines.empty() ? "" : ": " + truncate(lines.back(), style.maxLineWidth);
    return paint(style, kRed, "✗ verify failed (exit code " + str(p, "exitCode") + ")" + last) +
           "\n";
  }
  return paint(style, kDim, type + ": " + truncate(p.dump(), style.maxLineWidth)) + "\n";
}

int64_t parseTimeMs(const json& t) {
  if (t.is_number()) return t.get<int64_t>();
  if (!t.is_string()) return 0;
  std::string s = t.get<std::string>();
  struct tm tm = {};
  int millis = 0;
  const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) return 0;
  if (*rest == '.') millis = std::atoi(rest + 1) % 1000;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + millis;
}

std::string formatAge(int64_t ms) {
  if (ms < 0) ms = 0;
  int64_t s = ms / 1000;
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 86400) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

namespace {

std::string jobCell(const json& job, const char* a, const char* b) {
  std::string v = str(job, a);
  return v.empty() ? str(job, b) : v;
}

// Terminal columns taken by UTF-8 text: one per code point (good enough for a table).
size_t visibleWidth(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string pad(const std::string& s, size_t width) {
  size_t visible = visibleWidth(s);
  return visible >= width ? s : s + std::string(width - visible, ' ');
}

}  // namespace

std::string renderJobsTable(const json& jobs, int64_t nowMs) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"ID", "STATUS", "STEPS", "USD", "AGE", "REPO", "TASK"});
  for (const auto& job : jobs) {
    if (!job.is_object()) continue;
    char usd[32];
    std::snprintf(usd, sizeof usd, "%.4f", num(job, "tokenSpendUsd"));
    int64_t created = job.contains("createdAt") ? parseTimeMs(job["createdAt"]) : 0;
    rows.push_back({jobCell(job, "jobId", "id"), normalizeStatus(str(job, "status")),
                    jobCell(job, "steps", "stepCount"), usd,
                    created > 0 ? formatAge(nowMs - created) : "-",
                    truncate(jobCell(job, "repoUrl", "repo"), 40),
                    truncate(oneLine(jobCell(job, "taskDesc", "task")), 50)});
  }
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) widths[i] = std::max(widths[i], visibleWidth(r[i]));
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += i + 1 == r.size() ? r[i] : pad(r[i], widths[i] + 2);
    }
    out += line + "\n";
  }
  return out;
}

int exitCodeForStatus(const std::string& status) {
  std::string s = normalizeStatus(status);
  if (s == "COMPLETED") return 0;
  if (s == "FAILED") return 2;
  if (s == "STOPPED") return 3;
  return 1;
}

std::string normalizeStatus(std::string status) {
  for (char& c : status) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return status;
}

}  // namespace kiln::cli
