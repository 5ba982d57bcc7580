// PhaseOutcome: what each phase of a job run (provisioning, the turn loop, delivery) tells the
// runner to do next. Every phase returns one; nothing is signalled by a null or a flag on the
// side. Plain values, no I/O.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace kiln::agent {

// A failure that ends the job, with the stable code shown to users.
struct JobFailure {
  std::string code;
  std::string message;
  nlohmann::json extra = nlohmann::json::object();
};

struct PhaseOutcome {
  enum class Kind {
    // Go on to the next phase. After the turn loop: the agent finished and `summary` is what it
    // said; delivery comes next.
    kContinue,
    // This run is over and its last write is stored: the job completed, paused (a question or
    // an approval gate) or was handed over at a step boundary.
    kEnd,
    // Stop at once and write nothing more: the lease is lost (another node may own the job) or
    // the job was stopped/cancelled.
    kStop,
    // An expected failure (a budget, the model, the sandbox, a delivery error): the job ends
    // FAILED with `failure` at once.
    kFail,
    // An unexpected failure (a store error, stored state the runner cannot read, an exception):
    // the run is counted as a failed attempt and the job is retried, at most
    // RunnerDeps::maxAttempts times, then FAILED with code "internal" and `failure.message`.
    kRetry,
  };

  Kind kind = Kind::kContinue;
  JobFailure failure;                  // kFail, kRetry
  std::optional<std::string> summary;  // kContinue after the turn loop: the agent finished
  std::string why;                     // kStop, kEnd: for the log

  bool goesOn() const { return kind == Kind::kContinue; }

  static PhaseOutcome next() { return {}; }
  static PhaseOutcome finished(std::string summary) {
    PhaseOutcome o;
    o.summary = std::move(summary);
    return o;
  }
  static PhaseOutcome end(std::string why) {
    return {Kind::kEnd, {}, std::nullopt, std::move(why)};
  }
  static PhaseOutcome stop(std::string why) {
    return {Kind::kStop, {}, std::nullopt, std::move(why)};
  }
  static PhaseOutcome fail(JobFailure f) { return {Kind::kFail, std::move(f), std::nullopt, {}}; }
  static PhaseOutcome retry(std::string cause) {
    return {Kind::kRetry, JobFailure{"internal", std::move(cause)}, std::nullopt, {}};
  }
};

const char* outcomeName(PhaseOutcome::Kind k);

}  // namespace kiln::agent
