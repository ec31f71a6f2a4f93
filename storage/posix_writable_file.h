// The files the POSIX file system writes: plain buffered ones, and the bulk writers of
// WriteOpenOptions::direct_io (O_DIRECT from aligned buffers; write-behind through the page cache
// where the file system refuses O_DIRECT). Internal to storage/ and its tests.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>

#include "storage/filesystem.h"

namespace discomfort::storage {

// The system calls the writers make. Tests replace them to refuse O_DIRECT or fill the disk at
// the system-call level; everything else uses System().
struct PosixWriteCalls {
  std::function<int(const char* path, int flags)> open;  // creates with mode 0644
  std::function<ssize_t(int fd, const void* data, size_t size, off_t offset)> pwrite;
  std::function<int(int fd, off_t size)> fallocate;  // reserves [0, size), extending the file
  static const PosixWriteCalls& System();
};

// Opens `path` for writing: O_WRONLY | O_CREAT | O_CLOEXEC | `flags` (O_TRUNC or O_APPEND).
// With options.direct_io (O_TRUNC only: the bulk writers place each write at its offset), a bulk
// writer (see WriteOpenOptions); a reservation that fails removes the file it created.
Result<std::unique_ptr<WritableFile>> OpenPosixWritableFile(
    const std::string& path, int flags, const WriteOpenOptions& options,
    const PosixWriteCalls& calls = PosixWriteCalls::System());

}  // namespace discomfort::storage
