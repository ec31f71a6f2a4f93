// A file system that fails on purpose, for tests: wraps another one (LevelDB's fault-injection
// Env). Linked into test programs only.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/thread_annotations.h"
#include "storage/filesystem.h"

namespace discomfort::storage {

// Wraps another file system and fails on purpose. Faults apply to writes through files opened
// after they are set, and to renames.
class FaultInjectingFileSystem : public FileSystem {
 public:
  explicit FaultInjectingFileSystem(FileSystem* base = FileSystem::Default());

  // A disk with this many free bytes (counted from now): the write that crosses the limit
  // writes what fits, then fails with kNoSpace; every later write fails too.
  void SetFreeSpace(uint64_t bytes);
  // Appends fail with kIO (EIO) after `successful_appends` more appends succeed.
  void FailWritesAfter(uint64_t successful_appends);
  void SetRenameFails(bool fail) { rename_fails_ = fail; }
  void SetSyncFails(bool fail) { sync_fails_ = fail; }
  // Reads through files opened after this fail with kIO (EIO) after `successful_reads` more
  // reads succeed.
  void FailReadsAfter(uint64_t successful_reads);
  // Each read returns at most this many bytes (a legal short read; 0 = no limit).
  void SetMaxReadBytes(size_t bytes) { max_read_bytes_ = bytes; }
  // Reads find nothing past this offset, though size() is unchanged: a file truncated after it
  // was opened (UINT64_MAX = no limit).
  void SetReadableBytes(uint64_t bytes) { readable_bytes_ = bytes; }
  // Back to a healthy disk.
  void ClearFaults();

  uint64_t bytes_written() const { return bytes_written_.load(); }
  uint64_t faults_injected() const { return faults_injected_.load(); }

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  // Faults apply as to NewWritableFile; the options reach the wrapped file system.
  Result<std::unique_ptr<WritableFile>> OpenForWrite(const std::string& path,
                                                     const WriteOpenOptions& options) override;
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override;
  Result<std::shared_ptr<MappedFile>> MapFile(const std::string& path) override;
  Result<std::string> ReadFile(const std::string& path) override;
  Result<std::unique_ptr<RandomAccessFile>> OpenForRead(const std::string& path,
                                                        const ReadOpenOptions& options) override;
  Result<uint64_t> FileSize(const std::string& path) override;
  bool Exists(const std::string& path) override;
  bool IsSymlink(const std::string& path) override;
  Result<std::vector<std::string>> ListDir(const std::string& path) override;
  Status CreateDir(const std::string& path) override;
  Status RemoveFile(const std::string& path) override;
  Status RemoveAll(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status ReplaceDir(const std::string& from, const std::string& to) override;
  Status SyncDir(const std::string& path) override;
  bool ProcessAlive(int pid) override;

  uint64_t reads() const { return reads_.load(); }

 private:
  class FaultyFile;
  class FaultyReader;
  // Whether the next read may proceed; false (counted as a fault) when it must fail.
  bool AdmitRead() EXCLUDES(mu_);
  // Decides how many of `size` bytes an append may write; fills `fault` when it must fail.
  size_t Admit(size_t size, Status* fault) EXCLUDES(mu_);

  FileSystem* const base_;
  Mutex mu_;
  bool space_limited_ GUARDED_BY(mu_) = false;
  uint64_t free_bytes_ GUARDED_BY(mu_) = 0;
  bool write_errors_armed_ GUARDED_BY(mu_) = false;
  uint64_t appends_before_error_ GUARDED_BY(mu_) = 0;
  bool read_errors_armed_ GUARDED_BY(mu_) = false;
  uint64_t reads_before_error_ GUARDED_BY(mu_) = 0;
  std::atomic<size_t> max_read_bytes_{0};
  std::atomic<uint64_t> readable_bytes_{UINT64_MAX};
  std::atomic<uint64_t> reads_{0};
  std::atomic<bool> rename_fails_{false};
  std::atomic<bool> sync_fails_{false};
  std::atomic<uint64_t> bytes_written_{0};
  std::atomic<uint64_t> faults_injected_{0};
};

}  // namespace discomfort::storage
