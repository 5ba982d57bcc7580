#include "llm/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <set>

namespace kiln::llm {
namespace {

void globalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

// One request in flight. Owned by the post() coroutine frame; the multi handle only points at
// it while it is added.
struct Transfer {
  explicit Transfer(asio::any_io_executor ex) : doneSignal(ex) {
    doneSignal.expires_at(asio::steady_timer::time_point::max());
  }
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string requestBody;
  HttpResponse resp;
  ChunkFn onChunk;
  HeadFn onHead;
  bool headSent = false;
  CURLcode result = CURLE_OK;
  bool done = false;
  char error[CURL_ERROR_SIZE] = {0};
  asio::steady_timer doneSignal;  // cancelled when the transfer completes
};

class HttpClient::Multi : public std::enable_shared_from_this<Multi> {
 public:
  explicit Multi(asio::any_io_executor ex) : ex_(ex), timer_(ex) {
    globalInit();
    multi_ = curl_multi_init();
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Multi::onSocket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Multi::onTimer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  }
  ~Multi() { curl_multi_cleanup(multi_); }

  asio::any_io_executor executor() const { return ex_; }

  Status add(Transfer* t) {
    if (closed_) return Status(Code::kUnavailable, "http client is shut down");
    CURLMcode rc = curl_multi_add_handle(multi_, t->easy);
    if (rc != CURLM_OK) return internalError(std::string("curl: ") + curl_multi_strerror(rc));
    active_.insert(t);
    return Status::ok();
  }

  void remove(Transfer* t) {
    active_.erase(t);
    curl_multi_remove_handle(multi_, t->easy);
  }

  // Stops all I/O; pending waits complete with operation_aborted and find closed_ set.
  void shutdown() {
    closed_ = true;
    timer_.cancel();
    for (auto& [fd, s] : socks_) {
      s->gone = true;
      s->d.release();
    }
    socks_.clear();
    for (Transfer* t : active_) t->doneSignal.cancel();
  }

 private:
  struct Sock {
    Sock(asio::any_io_executor ex, curl_socket_t fd) : d(ex, fd) {}
    asio::posix::stream_descriptor d;
    int want = 0;  // CURL_POLL_IN | CURL_POLL_OUT
    bool readArmed = false;
    bool writeArmed = false;
    bool gone = false;
  };

  static int onSocket(CURL*, curl_socket_t fd, int what, void* userp, void*) {
    static_cast<Multi*>(userp)->socketChanged(fd, what);
    return 0;
  }

  static int onTimer(CURLM*, long timeoutMs, void* userp) {
    static_cast<Multi*>(userp)->timerChanged(timeoutMs);
    return 0;
  }

  void socketChanged(curl_socket_t fd, int what) {
    auto it = socks_.find(fd);
    if (what == CURL_POLL_REMOVE) {
      // curl closes the fd right after this; release it so Asio never closes it twice.
      if (it != socks_.end()) {
        it->second->gone = true;
        it->second->d.release();
        socks_.erase(it);
      }
      return;
    }
    if (closed_) return;
    if (it == socks_.end()) it = socks_.emplace(fd, std::make_shared<Sock>(ex_, fd)).first;
    it->second->want = what;
    arm(it->second, fd);
  }

  void arm(const std::shared_ptr<Sock>& s, curl_socket_t fd) {
    if ((s->want & CURL_POLL_IN) && !s->readArmed) {
      s->readArmed = true;
      s->d.async_wait(asio::posix::descriptor_base::wait_read,
                      [self = shared_from_this(), s, fd](const boost::system::error_code& ec) {
                        s->readArmed = false;
                        self->ready(s, fd, ec, CURL_CSELECT_IN);
                      });
    }
    if ((s->want & CURL_POLL_OUT) && !s->writeArmed) {
      s->writeArmed = true;
      s->d.async_wait(asio::posix::descriptor_base::wait_write,
                      [self = shared_from_this(), s, fd](const boost::system::error_code& ec) {
                        s->writeArmed = false;
                        self->ready(s, fd, ec, CURL_CSELECT_OUT);
                      });
    }
  }

  void ready(const std::shared_ptr<Sock>& s, curl_socket_t fd, boost::system::error_code ec,
             int flags) {
    if (closed_ || s->gone || ec == asio::error::operation_aborted) return;
    if (ec) flags |= CURL_CSELECT_ERR;
    int running = 0;
    curl_multi_socket_action(multi_, fd, flags, &running);
    drainMessages();
    if (!s->gone && !closed_) arm(s, fd);
  }

  void timerChanged(long timeoutMs) {
    if (timeoutMs < 0) {
      timer_.cancel();
      return;
    }
    // Never call socket_action from inside curl's callback: go through the loop.
    timer_.expires_after(std::chrono::milliseconds(timeoutMs));
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->closed_) return;
      int running = 0;
      curl_multi_socket_action(self->multi_, CURL_SOCKET_TIMEOUT, 0, &running);
      self->drainMessages();
    });
  }

  void drainMessages() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      if (!t) continue;
      t->result = msg->data.result;
      t->done = true;
      t->doneSignal.cancel();
    }
  }

  asio::any_io_executor ex_;
  asio::steady_timer timer_;
  CURLM* multi_ = nullptr;
  std::map<curl_socket_t, std::shared_ptr<Sock>> socks_;
  std::set<Transfer*> active_;
  bool closed_ = false;
};

namespace {

size_t onHeader(char* data, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    t->resp.headers.clear();  // a new response (after 100-continue or a redirect)
  } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
    t->resp.headers[lower(std::string(line.substr(0, colon)))] = trim(line.substr(colon + 1));
  }
  return size * n;
}

size_t onBody(char* data, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  long status = 0;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  std::string_view bytes(data, size * n);
  if (t->onChunk && status >= 200 && status < 300) {
    if (t->onHead && !t->headSent) {
      t->headSent = true;
      t->resp.status = status;
      t->onHead(t->resp);
    }
    t->onChunk(bytes);
  } else {
    t->resp.body.append(bytes);
  }
  return size * n;
}

void configure(Transfer& t, const HttpRequest& req) {
  CURL* e = t.easy;
  curl_easy_setopt(e, CURLOPT_URL, req.url.c_str());
  if (req.method == "GET") {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t.requestBody.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(t.requestBody.size()));
    if (req.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  for (const auto& h : req.headers) t.headers = curl_slist_append(t.headers, h.c_str());
  // Without this curl waits a second for "100 Continue" before sending large bodies.
  t.headers = curl_slist_append(t.headers, "Expect:");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout.count()));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(req.connectTimeout.count()));
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, static_cast<long>(req.stallTimeout.count()));
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &onHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &onBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error);
  curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
}

Status transportError(const Transfer& t) {
  std::string what = t.error[0] ? t.error : curl_easy_strerror(t.result);
  if (t.result == CURLE_OPERATION_TIMEDOUT) return Status(Code::kDeadlineExceeded, what);
  return Status(Code::kUnavailable, what);
}

// Detaches the transfer from the multi handle and frees curl's state, however post() ends.
struct TransferGuard {
  std::shared_ptr<HttpClient::Multi> multi;
  Transfer* t;
  bool added = false;
  ~TransferGuard() {
    if (added) multi->remove(t);
    curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
  }
};

}  // namespace

HttpClient::HttpClient(asio::any_io_executor ex) : multi_(std::make_shared<Multi>(ex)) {}

HttpClient::~HttpClient() { multi_->shutdown(); }

Task<Result<HttpResponse>> HttpClient::post(const HttpRequest& req, ChunkFn onChunk,
                                            HeadFn onHead) {
  std::shared_ptr<Multi> multi = multi_;
  auto t = std::make_unique<Transfer>(multi->executor());
  t->easy = curl_easy_init();
  if (!t->easy) co_return internalError("curl_easy_init failed");
  TransferGuard guard{multi, t.get()};
  t->requestBody = req.body;
  t->onChunk = std::move(onChunk);
  t->onHead = std::move(onHead);
  configure(*t, req);
  Status st = multi->add(t.get());
  if (!st.isOk()) co_return st;
  guard.added = true;
  while (!t->done) {
    boost::system::error_code ec;
    co_await t->doneSignal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!t->done && ec != asio::error::operation_aborted) continue;
    if (!t->done) co_return Status(Code::kUnavailable, "http client is shut down");
  }
  if (t->result != CURLE_OK) co_return transportError(*t);
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->resp.status);
  co_return std::move(t->resp);
}

}  // namespace kiln::llm
