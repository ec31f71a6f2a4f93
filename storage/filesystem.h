// The file system the context store spills to and snapshots into, behind an interface so tests
// can inject faults (LevelDB's Env / FaultInjectionTestEnv). Every method is thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "discomfort/status.h"

namespace discomfort::storage {

// A file opened for writing. After a failed Append the file may hold part of the data; the
// caller removes it. Destruction closes the file without syncing; a file opened for direct I/O
// (WriteOpenOptions) may then lack the bytes it still buffered: call Close to keep a file.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Writes all `size` bytes or returns kNoSpace (disk full) / kIO.
  virtual Status Append(const void* data, size_t size) = 0;
  virtual Status Sync() = 0;  // fsync: the bytes are on the disk when it returns Ok
  virtual Status Close() = 0;
};

// A whole file mapped into memory, private copy-on-write: reads share the page cache, writes
// through the pointer stay in this process and never reach the file. Unmapped on destruction.
class MappedFile {
 public:
  virtual ~MappedFile() = default;
  virtual uint8_t* data() const = 0;
  virtual size_t size() const = 0;
};

// A file opened for reading at any offset. Read is thread-safe: several threads may read
// different ranges at once (the parallel reload).
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  virtual uint64_t size() const = 0;
  // Reads up to `size` bytes at `offset` into `dest`; returns how many were read: fewer only at
  // the end of the file (0 there) or when the call was cut short, so callers loop. kIO on errors.
  // With direct I/O (OpenOptions::direct_io) `offset`, `size` and `dest` should be multiples of
  // kDirectIOAlignment; other ranges are read through the page cache.
  virtual Result<size_t> Read(uint64_t offset, size_t size, void* dest) = 0;
};

// Direct I/O transfers need this alignment of offsets, lengths and buffers (the largest logical
// block size in use; 512-byte devices accept it too).
constexpr size_t kDirectIOAlignment = 4096;

struct ReadOpenOptions {
  // Read around the page cache (O_DIRECT) where the range is not cached already: a big cold
  // file then goes straight from the disk into the caller's buffer, without a page-cache copy
  // doubling its memory. Ignored where the file system lacks it (tmpfs).
  bool direct_io = false;
};

struct WriteOpenOptions {
  // For a large file written front to back and not read back soon (spill files, snapshot
  // tensors): written at the disk's speed and kept out of the page cache. POSIX writes it with
  // O_DIRECT from aligned buffers (several writes in flight, the caller's copy into them
  // overlapping the disk), so no dirty pages pile up for the kernel to throttle and no cached
  // page of the rest of the process is pushed out. Where the file system refuses O_DIRECT it is
  // written through the page cache with write-behind: each written range is sent to the disk at
  // once and dropped from the cache once there, which bounds the dirty pages the same way.
  bool direct_io = false;
  // The file's final size when known: the space is reserved up front (fallocate), so a full disk
  // fails the open (kNoSpace, no file left) instead of a write gigabytes later, and the file is
  // laid out in one piece. A file that ends up shorter is cut to its real size on Close.
  uint64_t size_hint = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // The real POSIX file system; lives for the whole process.
  static FileSystem* Default();

  // Creates or truncates `path`.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Creates or truncates `path`, written as `options` say. The default ignores the options
  // (NewWritableFile): file systems for tests need not support them.
  virtual Result<std::unique_ptr<WritableFile>> OpenForWrite(const std::string& path,
                                                             const WriteOpenOptions& options);
  // Creates `path` or opens it to append at its end (logs that a resumed run continues). The
  // default refuses: file systems for tests need not support it.
  virtual Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path);
  virtual Result<std::shared_ptr<MappedFile>> MapFile(const std::string& path) = 0;
  virtual Result<std::string> ReadFile(const std::string& path) = 0;
  // The default reads through MapFile (for file systems that only map); POSIX uses pread.
  virtual Result<std::unique_ptr<RandomAccessFile>> OpenForRead(const std::string& path,
                                                                const ReadOpenOptions& options);
  virtual Result<uint64_t> FileSize(const std::string& path) = 0;
  virtual bool Exists(const std::string& path) = 0;
  // Whether `path` itself is a symbolic link (not followed); false when it does not exist.
  virtual bool IsSymlink(const std::string& path) = 0;
  // Names (not paths) of the entries of a directory, without "." and "..".
  virtual Result<std::vector<std::string>> ListDir(const std::string& path) = 0;

  // Creates the directory and its missing parents; Ok when it already exists.
  virtual Status CreateDir(const std::string& path) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  // Removes a file or a directory tree; Ok when nothing is there.
  virtual Status RemoveAll(const std::string& path) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // Puts directory `from` at `to`. When `to` exists the two are swapped atomically (Linux
  // renameat2 RENAME_EXCHANGE) and the old one removed, so `to` is never missing.
  virtual Status ReplaceDir(const std::string& from, const std::string& to) = 0;
  // fsync of a directory, so renames and new entries in it survive a crash.
  virtual Status SyncDir(const std::string& path) = 0;

  // Whether a process with this id is running (/proc/<pid>); used to reclaim the temporary
  // folders of dead processes.
  virtual bool ProcessAlive(int pid) = 0;
};

// Writes `bytes` to `path` (created or truncated), fsynced when `sync`. A failed write leaves a
// partial file; callers that must never expose one use WriteFileAtomically.
Status WriteWholeFile(FileSystem& fs, const std::string& path, std::string_view bytes,
                      bool sync = true);
// Writes to a temporary name beside `path` and renames it over `path` (fsyncing the file and its
// folder when `sync`): a reader sees the old file or the whole new one, never a part, and a failure
// (disk full) leaves the old file and no temporary behind.
Status WriteFileAtomically(FileSystem& fs, const std::string& path, std::string_view bytes,
                           bool sync = true);

// Status for a failed system call: kNoSpace for ENOSPC/EDQUOT, kNotFound for ENOENT, else kIO.
Status ErrnoStatus(const std::string& what, const std::string& path, int error_number);

}  // namespace discomfort::storage
