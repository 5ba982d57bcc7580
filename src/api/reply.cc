#include "api/reply.h"

namespace kiln::api {

ApiError ApiError::fromStatus(const Status& s) {
  return {httpStatusFor(s.code()), codeName(s.code()), s.message()};
}

std::string dumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Reply jsonReply(int status, const json& body) {
  Reply r;
  r.status = status;
  r.body = dumpJson(body);
  return r;
}

Reply errorReply(const ApiError& e) {
  return jsonReply(e.status, {{"error", {{"code", e.code}, {"message", e.message}}}});
}

Reply errorReply(const Status& s) { return errorReply(ApiError::fromStatus(s)); }

}  // namespace kiln::api
