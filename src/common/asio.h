// One place to include Boost.Asio/Beast. Boost 1.74's awaitable.hpp uses std::exchange without
// including <utility>, so <utility> must come first.
#pragma once
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace kiln {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
template <class T = void>
using Task = boost::asio::awaitable<T>;
}  // namespace kiln
