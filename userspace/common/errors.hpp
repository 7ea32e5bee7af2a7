// One user-facing error type, caught in main: a message and an exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace portghost {

enum ExitCode { kExitOk = 0, kExitRuntime = 1, kExitUsage = 2 };

class FatalError : public std::runtime_error {
 public:
  explicit FatalError(const std::string& msg, int code = kExitRuntime) : std::runtime_error(msg), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// "what: strerror(err)" from a negative or positive errno.
std::string errno_text(const std::string& what, int err);

}  // namespace portghost
