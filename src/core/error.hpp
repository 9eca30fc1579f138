#pragma once
// Errors that reach the user. Every message names what was wrong (the key, file, tensor or
// option), what was expected and what was found. The driver maps each kind to an exit code:
// user input errors exit 2, internal errors exit 1.
#include <sstream>
#include <stdexcept>
#include <string>

namespace dmis {

class Error : public std::runtime_error {
public:
  explicit Error(const std::string& what, int exit_code = 1)
      : std::runtime_error(what), m_exit_code(exit_code) {}
  int exit_code() const { return m_exit_code; }

private:
  int m_exit_code;
};

/// A tensor with the wrong extents was passed to a kernel or model.
class ShapeError : public Error {
public:
  explicit ShapeError(const std::string& what) : Error(what, 1) {}
};

/// Bad user input: command line, input deck, dataset or checkpoint.
class InputError : public Error {
public:
  explicit InputError(const std::string& what) : Error(what, 2) {}
};

/// A usage error on the command line (exit 2, with a usage message).
class UsageError : public InputError {
public:
  explicit UsageError(const std::string& what) : InputError(what) {}
};

/// Build "a b c" from any streamable pieces.
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace dmis
