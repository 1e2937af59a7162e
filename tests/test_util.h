#pragma once
// Shared helpers for the tests: fixture paths and scratch directories.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <string>

namespace starft::testing {

// ../shared/fixtures (or $STARFT_FIXTURES), joined with `rel`. Fails the test if missing.
std::string fixture(const std::string& rel);

// A fresh, empty directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return (path_ / rel).string(); }

 private:
  std::filesystem::path path_;
};

// Path of the built `starft` executable (set by CTest through $STARFT_BINARY).
std::string starft_binary();

// Runs `fn` and returns the message of the starft::Error it throws ("" when it throws none).
std::string error_of(const std::function<void()>& fn);

// Polls `done` every 20 ms until it holds or `deadline_s` seconds pass; returns whether it held.
// Tests wait for the event they need under a deadline this way, never for a fixed time.
bool wait_until(const std::function<bool()>& done, double deadline_s);

// Writes `bytes` to `path` (binary), creating its parent folders. Fails the test if it cannot.
void write_file(const std::string& path, const std::string& bytes);

// The bytes of the file at `path` ("" and a test failure when it cannot be opened).
std::string read_file(const std::string& path);

// The JSON document in the file at `path` (a test failure, and null, when it cannot be read or parsed).
nlohmann::json read_json(const std::string& path);

// Runs a shell command, returns its exit status; stdout+stderr go to `output` if given.
int run_command(const std::string& command, std::string* output = nullptr);

}  // namespace starft::testing
