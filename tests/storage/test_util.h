// Helpers shared by the storage tests (not a test file itself: only *_test.cc are globbed).
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include "storage/context.h"

namespace discomfort::storage::testing {

// A fresh folder under /tmp, removed with everything in it when the test ends.
class ScratchDir {
 public:
  ScratchDir() {
    char name[] = "/tmp/discomfort-storage-test-XXXXXX";
    const char* made = ::mkdtemp(name);
    path_ = made != nullptr ? made : "";
  }
  ~ScratchDir() { FileSystem::Default()->RemoveAll(path_).IgnoreError(); }  // best-effort cleanup
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Same dtype, shape and bytes (row-major), whatever the strides or device.
inline ::testing::AssertionResult SameBytes(const at::Tensor& expected, const at::Tensor& actual) {
  if (!actual.defined()) return ::testing::AssertionFailure() << "undefined tensor";
  if (expected.scalar_type() != actual.scalar_type()) {
    return ::testing::AssertionFailure()
           << "dtype " << actual.scalar_type() << " != " << expected.scalar_type();
  }
  if (expected.sizes() != actual.sizes()) {
    return ::testing::AssertionFailure()
           << "shape " << actual.sizes() << " != " << expected.sizes();
  }
  at::Tensor a = expected.cpu().contiguous();
  at::Tensor b = actual.cpu().contiguous();
  size_t bytes = static_cast<size_t>(a.numel()) * a.element_size();
  if (bytes > 0 && std::memcmp(a.const_data_ptr(), b.const_data_ptr(), bytes) != 0) {
    return ::testing::AssertionFailure() << "bytes differ";
  }
  return ::testing::AssertionSuccess();
}

inline ContextOptions BudgetOptions(uint64_t budget_bytes, const std::string& temp_root) {
  ContextOptions options;
  options.max_ram_gb = static_cast<double>(budget_bytes) / (1024.0 * 1024.0 * 1024.0);
  options.temp_root = temp_root;
  return options;
}

// std::filesystem is avoided: the venv's libtorch.so exports broken copies of its functions.
// Drops the file's pages from the page cache (written back first), so the next read goes to the
// disk.
inline void DropCache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

inline bool Exists(const std::string& path) { return FileSystem::Default()->Exists(path); }
inline void MakeDirs(const std::string& path) {
  EXPECT_TRUE(FileSystem::Default()->CreateDir(path).ok()) << path;
}
inline void Remove(const std::string& path) {
  EXPECT_TRUE(FileSystem::Default()->RemoveAll(path).ok()) << path;
}

inline size_t CountFiles(const std::string& dir) {
  auto names = FileSystem::Default()->ListDir(dir);
  return names.ok() ? names->size() : 0;
}

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// The project venv's Python when it can import torch and safetensors; "" otherwise.
inline std::string PythonWithSafetensors() {
  const std::string python = std::string(DISCOMFORT_SOURCE_DIR) + "/.venv/bin/python";
  if (!Exists(python)) return "";
  const std::string probe = python + " -c 'import safetensors.torch, torch' >/dev/null 2>&1";
  return std::system(probe.c_str()) == 0 ? python : "";
}

// Runs a Python script file with the venv's Python; returns its exit code.
inline int RunPython(const std::string& python, const std::string& script_path) {
  int status = std::system((python + " " + script_path).c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The id of a process that has exited (and been reaped): nothing runs under it now.
inline int DeadPid() {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return static_cast<int>(child);
}

// The line of /proc/self/maps whose range holds `address`, "" when none does.
inline std::string MappingOf(const void* address) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto target = reinterpret_cast<uintptr_t>(address);
  while (std::getline(maps, line)) {
    uintptr_t begin = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &begin, &end) == 2 && target >= begin &&
        target < end) {
      return line;
    }
  }
  return "";
}

}  // namespace discomfort::storage::testing
