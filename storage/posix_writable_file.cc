#include "storage/posix_writable_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "base/thread_annotations.h"

namespace discomfort::storage {
namespace {

// Direct I/O: bytes per write request, buffers the caller fills, threads writing them. Two
// requests in flight keep this project's virtio disk busy where one leaves it idle between
// requests; 16 MiB requests reach its sequential speed.
constexpr size_t kBlockBytes = size_t{16} << 20;
constexpr size_t kBlocks = 4;
constexpr size_t kWriters = 2;
// Write-behind: the page cache holds at most this many windows of a file being written.
constexpr uint64_t kWindowBytes = uint64_t{8} << 20;
constexpr size_t kWindowsInFlight = 4;

uint64_t RoundUp(uint64_t value, uint64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

bool IsAligned(const void* address) {
  return reinterpret_cast<uintptr_t>(address) % kDirectIOAlignment == 0;
}

// Writes [data, data + size) at `offset`, looping over short writes; on return they describe
// what is left. 0, or the errno of the failed write (a write that makes no progress: ENOSPC).
int WriteFully(const PosixWriteCalls& calls, int fd, const uint8_t*& data, size_t& size,
               uint64_t& offset) {
  while (size > 0) {
    const ssize_t n = calls.pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return ENOSPC;
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return 0;
}

// sync_file_range fails like this where the file system has no write-back to start (a pipe).
bool WriteBackUnsupported(int error_number) {
  return error_number == EINVAL || error_number == ESPIPE || error_number == ENOSYS;
}

// Waits until [offset, offset + size) is on the disk, then drops it from the page cache.
Status SettleRange(int fd, const std::string& path, uint64_t offset, uint64_t size) {
  if (::sync_file_range(
          fd, static_cast<off_t>(offset), static_cast<off_t>(size),
          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0 &&
      !WriteBackUnsupported(errno)) {
    return ErrnoStatus("write back", path, errno);
  }
  ::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(size), POSIX_FADV_DONTNEED);
  return Status::Ok();
}

class PosixWritableFile : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Append(const void* data, size_t size) override {
    const char* bytes = static_cast<const char*>(data);
    while (size > 0) {
      ssize_t n = ::write(fd_, bytes, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("write", path_, errno);
      }
      bytes += n;
      size -= static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  Status Sync() override {
    if (::fdatasync(fd_) != 0) return ErrnoStatus("fsync", path_, errno);
    return Status::Ok();
  }

  Status Close() override {
    int fd = fd_;
    fd_ = -1;
    if (fd >= 0 && ::close(fd) != 0) return ErrnoStatus("close", path_, errno);
    return Status::Ok();
  }

 private:
  std::string path_;
  int fd_;
};

// Through the page cache, each window sent to the disk as soon as it is written and dropped
// from the cache once there: the kernel never sees more than a few windows dirty, so it does not
// throttle the writer, and the file leaves no cached pages behind.
class WriteBehindFile : public WritableFile {
 public:
  WriteBehindFile(std::string path, int fd, PosixWriteCalls calls, uint64_t reserved)
      : path_(std::move(path)), fd_(fd), calls_(std::move(calls)), reserved_(reserved) {}
  ~WriteBehindFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Append(const void* data, size_t size) override {
    const uint8_t* bytes = static_cast<const uint8_t*>(data);
    while (size > 0) {
      const size_t piece = static_cast<size_t>(
          std::min<uint64_t>(size, (size_ / kWindowBytes + 1) * kWindowBytes - size_));
      const uint8_t* at = bytes;
      size_t left = piece;
      uint64_t offset = size_;
      const int error_number = WriteFully(calls_, fd_, at, left, offset);
      size_ = offset;
      if (error_number != 0) return ErrnoStatus("write", path_, error_number);
      bytes += piece;
      size -= piece;
      if (size_ % kWindowBytes == 0) DISCOMFORT_RETURN_IF_ERROR(StartWriteBack());
    }
    return Status::Ok();
  }

  Status Sync() override {
    if (::fdatasync(fd_) != 0) return ErrnoStatus("fsync", path_, errno);
    return Status::Ok();
  }

  Status Close() override {
    if (fd_ < 0) return Status::Ok();
    Status status = StartWriteBack();
    while (status.ok() && !in_flight_.empty()) status = SettleOldest();
    if (status.ok() && reserved_ > size_ && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
      status = ErrnoStatus("truncate", path_, errno);
    }
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0 && status.ok()) status = ErrnoStatus("close", path_, errno);
    return status;
  }

 private:
  // Starts the write-back of what was written since the last call; settles the oldest ranges
  // beyond kWindowsInFlight.
  Status StartWriteBack() {
    if (size_ > started_) {
      if (::sync_file_range(fd_, static_cast<off_t>(started_), static_cast<off_t>(size_ - started_),
                            SYNC_FILE_RANGE_WRITE) != 0 &&
          !WriteBackUnsupported(errno)) {
        return ErrnoStatus("write back", path_, errno);
      }
      in_flight_.emplace_back(started_, size_ - started_);
      started_ = size_;
    }
    while (in_flight_.size() > kWindowsInFlight) DISCOMFORT_RETURN_IF_ERROR(SettleOldest());
    return Status::Ok();
  }

  Status SettleOldest() {
    const auto [offset, bytes] = in_flight_.front();
    in_flight_.pop_front();
    return SettleRange(fd_, path_, offset, bytes);
  }

  const std::string path_;
  int fd_;
  const PosixWriteCalls calls_;
  const uint64_t reserved_;  // the file's size from fallocate: cut back to size_ on Close
  uint64_t size_ = 0;        // bytes appended
  uint64_t started_ = 0;     // write-back started for [0, started_)
  std::deque<std::pair<uint64_t, uint64_t>> in_flight_;  // (offset, bytes) not yet settled
};

// O_DIRECT: the caller's bytes are copied into aligned buffers that writer threads send to the
// disk while the caller fills the next ones (the copy runs several times faster than this
// project's disk, so it hides behind the writes). Memory that is already aligned (pinned staging
// of device tensors) is written from where it is, without the copy. The last partial block is
// written padded to the alignment and the file cut to its size. A write the file system refuses
// (EINVAL: larger blocks, no direct I/O after all) turns the file into a write-behind one.
// Append, Sync and Close come from one thread at a time, as for any WritableFile.
class DirectFile : public WritableFile {
 public:
  DirectFile(std::string path, int fd, PosixWriteCalls calls, uint64_t reserved, uint64_t size_hint)
      : path_(std::move(path)),
        fd_(fd),
        calls_(std::move(calls)),
        block_bytes_(size_hint > 0 ? static_cast<size_t>(std::min<uint64_t>(
                                         kBlockBytes, RoundUp(size_hint, kDirectIOAlignment)))
                                   : kBlockBytes),
        disk_end_(reserved) {}

  ~DirectFile() override {
    if (fd_ < 0) return;
    {
      MutexLock lock(mu_);
      if (error_.ok()) error_ = Status(ErrorCode::kIO, path_ + " was closed without Close");
    }
    StopWriters();  // the queued blocks are skipped: the error above is set
    ReleaseBuffers();
    ::close(fd_);
  }

  Status Append(const void* data, size_t size) override {
    DISCOMFORT_RETURN_IF_ERROR(FirstError());
    const uint8_t* bytes = static_cast<const uint8_t*>(data);
    while (size > 0) {
      if (fill_ % kDirectIOAlignment == 0 && size >= kDirectIOAlignment && IsAligned(bytes) &&
          !buffered_.load()) {
        if (fill_ > 0) DISCOMFORT_RETURN_IF_ERROR(Submit());
        const size_t whole = size / kDirectIOAlignment * kDirectIOAlignment;
        DISCOMFORT_RETURN_IF_ERROR(Record(WriteAt(bytes, whole, offset_)));
        offset_ += whole;
        bytes += whole;
        size -= whole;
        continue;
      }
      if (buffers_ == nullptr) DISCOMFORT_RETURN_IF_ERROR(Record(MapBuffers()));
      const size_t n = std::min(size, block_bytes_ - fill_);
      std::memcpy(Slot(current_) + fill_, bytes, n);
      fill_ += n;
      bytes += n;
      size -= n;
      if (fill_ == block_bytes_) DISCOMFORT_RETURN_IF_ERROR(Submit());
    }
    return Status::Ok();
  }

  Status Sync() override {
    DISCOMFORT_RETURN_IF_ERROR(Flush());
    if (::fdatasync(fd_) != 0) return Record(ErrnoStatus("fsync", path_, errno));
    return Status::Ok();
  }

  Status Close() override {
    if (fd_ < 0) return Status::Ok();
    Status status = Flush();
    StopWriters();
    ReleaseBuffers();
    if (::close(fd_) != 0 && status.ok()) status = ErrnoStatus("close", path_, errno);
    fd_ = -1;
    return status;
  }

 private:
  struct Block {
    size_t slot;
    size_t bytes;
    uint64_t offset;
  };

  uint8_t* Slot(size_t slot) const { return buffers_ + slot * block_bytes_; }

  Status MapBuffers() {
    void* addr = ::mmap(nullptr, kBlocks * block_bytes_, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (addr == MAP_FAILED) return ErrnoStatus("allocating write buffers for", path_, errno);
    buffers_ = static_cast<uint8_t*>(addr);
    return Status::Ok();
  }

  void ReleaseBuffers() {
    if (buffers_ != nullptr) ::munmap(buffers_, kBlocks * block_bytes_);
    buffers_ = nullptr;
  }

  // Any thread. After O_DIRECT was dropped, each range is settled (on the disk, out of the page
  // cache) before the call returns.
  Status WriteAt(const uint8_t* data, size_t size, uint64_t offset) {
    const uint64_t begin = offset;
    const size_t total = size;
    while (true) {
      const bool direct = !buffered_.load();
      const int error_number = WriteFully(calls_, fd_, data, size, offset);
      if (error_number == 0) break;
      if (error_number == EINVAL && direct && DropDirect()) continue;
      return ErrnoStatus("write", path_, error_number);
    }
    if (buffered_.load()) return SettleRange(fd_, path_, begin, total);
    return Status::Ok();
  }

  bool DropDirect() {
    const int flags = ::fcntl(fd_, F_GETFL);
    if (flags < 0) return false;
    if ((flags & O_DIRECT) != 0 && ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) != 0) return false;
    buffered_ = true;
    return true;
  }

  Status StartWriters() {
    if (!writers_.empty()) return Status::Ok();
    for (size_t i = 0; i < kWriters; ++i) {
      try {
        writers_.emplace_back([this] { WriterLoop(); });
      } catch (const std::system_error&) {
        break;  // fewer writes in flight, same bytes
      }
    }
    if (writers_.empty()) return Status(ErrorCode::kIO, "no thread could start to write " + path_);
    return Status::Ok();
  }

  void StopWriters() {
    {
      MutexLock lock(mu_);
      stopping_ = true;
      cv_.NotifyAll();
    }
    for (std::thread& writer : writers_) writer.join();
    writers_.clear();
  }

  void WriterLoop() {
    MutexLock lock(mu_);
    while (true) {
      while (queue_.empty() && !stopping_) cv_.Wait(mu_);
      if (queue_.empty()) return;
      const Block block = queue_.front();
      queue_.pop_front();
      const bool skip = !error_.ok();
      lock.Unlock();
      Status written = skip ? Status::Ok() : WriteAt(Slot(block.slot), block.bytes, block.offset);
      lock.Lock();
      if (!written.ok() && error_.ok()) error_ = std::move(written);
      busy_[block.slot] = false;
      --pending_;
      cv_.NotifyAll();
    }
  }

  // Hands the block being filled to the writers and waits for a free one to fill next.
  Status Submit() {
    DISCOMFORT_RETURN_IF_ERROR(Record(StartWriters()));
    MutexLock lock(mu_);
    queue_.push_back({current_, fill_, offset_});
    busy_[current_] = true;
    ++pending_;
    cv_.NotifyAll();
    offset_ += fill_;
    fill_ = 0;
    while (error_.ok()) {
      for (size_t slot = 0; slot < kBlocks; ++slot) {
        if (!busy_[slot]) {
          current_ = slot;
          return Status::Ok();
        }
      }
      cv_.Wait(mu_);
    }
    return error_;
  }

  // Everything appended is in the file (the last block padded), and the file has its size.
  Status Flush() {
    {
      MutexLock lock(mu_);
      while (pending_ > 0) cv_.Wait(mu_);
      if (!error_.ok()) return error_;
    }
    if (fill_ > 0) {
      const size_t padded =
          static_cast<size_t>(buffered_.load() ? fill_ : RoundUp(fill_, kDirectIOAlignment));
      std::memset(Slot(current_) + fill_, 0, padded - fill_);
      DISCOMFORT_RETURN_IF_ERROR(Record(WriteAt(Slot(current_), padded, offset_)));
      disk_end_ = std::max<uint64_t>(disk_end_, offset_ + padded);
    }
    const uint64_t size = offset_ + fill_;
    if (disk_end_ > size) {
      if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
        return Record(ErrnoStatus("truncate", path_, errno));
      }
      disk_end_ = size;
    }
    return Status::Ok();
  }

  Status FirstError() {
    MutexLock lock(mu_);
    return error_;
  }

  // Keeps the first error: later appends and Close report it.
  Status Record(Status status) {
    if (!status.ok()) {
      MutexLock lock(mu_);
      if (error_.ok()) error_ = status;
    }
    return status;
  }

  const std::string path_;
  int fd_;
  const PosixWriteCalls calls_;
  const size_t block_bytes_;
  uint8_t* buffers_ = nullptr;  // kBlocks blocks, mapped on first use
  // The caller's side.
  size_t current_ = 0;     // the block being filled
  size_t fill_ = 0;        // its bytes so far
  uint64_t offset_ = 0;    // where it goes in the file
  uint64_t disk_end_ = 0;  // the file's size as reserved or padded: cut back when past the data
  std::vector<std::thread> writers_;
  std::atomic<bool> buffered_{false};  // O_DIRECT was refused: write-behind from then on

  Mutex mu_;
  CondVar cv_;
  std::deque<Block> queue_ GUARDED_BY(mu_);
  bool busy_[kBlocks] GUARDED_BY(mu_) = {};  // handed to the writers, not written yet
  size_t pending_ GUARDED_BY(mu_) = 0;       // blocks handed over and not written yet
  bool stopping_ GUARDED_BY(mu_) = false;
  Status error_ GUARDED_BY(mu_);
};

}  // namespace

const PosixWriteCalls& PosixWriteCalls::System() {
  static const PosixWriteCalls* const kSystem = new PosixWriteCalls{
      [](const char* path, int flags) { return ::open(path, flags, 0644); },
      [](int fd, const void* data, size_t size, off_t offset) {
        return ::pwrite(fd, data, size, offset);
      },
      [](int fd, off_t size) { return ::fallocate(fd, 0, 0, size); },
  };
  return *kSystem;
}

Result<std::unique_ptr<WritableFile>> OpenPosixWritableFile(const std::string& path, int flags,
                                                            const WriteOpenOptions& options,
                                                            const PosixWriteCalls& calls) {
  const int base = O_WRONLY | O_CREAT | O_CLOEXEC | flags;
  if (!options.direct_io) {
    const int fd = calls.open(path.c_str(), base);
    if (fd < 0) return ErrnoStatus("create", path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
  }
  bool direct = true;
  int fd = calls.open(path.c_str(), base | O_DIRECT);
  if (fd < 0 && errno == EINVAL) {  // a file system without O_DIRECT (tmpfs before Linux 6.6)
    direct = false;
    fd = calls.open(path.c_str(), base);
  }
  if (fd < 0) return ErrnoStatus("create", path, errno);
  uint64_t reserved = 0;
  if (options.size_hint > 0) {
    if (calls.fallocate(fd, static_cast<off_t>(options.size_hint)) == 0) {
      reserved = options.size_hint;
    } else if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL) {
      Status status =
          ErrnoStatus("reserve " + std::to_string(options.size_hint) + " bytes for", path, errno);
      ::close(fd);
      ::unlink(path.c_str());  // created (or truncated) here: nothing of value is lost
      return status;
    }
  }
  if (direct) {
    return std::unique_ptr<WritableFile>(
        new DirectFile(path, fd, calls, reserved, options.size_hint));
  }
  return std::unique_ptr<WritableFile>(new WriteBehindFile(path, fd, calls, reserved));
}

}  // namespace discomfort::storage
