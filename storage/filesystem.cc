#include "storage/filesystem.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

// No std::filesystem here: the venv's libtorch.so exports its own broken copies of those
// functions, and they win symbol resolution in our process (remove_all crashed).

namespace discomfort::storage {

Status ErrnoStatus(const std::string& what, const std::string& path, int error_number) {
  ErrorCode code = ErrorCode::kIO;
  if (error_number == ENOSPC || error_number == EDQUOT) code = ErrorCode::kNoSpace;
  if (error_number == ENOENT) code = ErrorCode::kNotFound;
  return Status(code, what + " " + path + ": " + std::strerror(error_number));
}

namespace {

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

class PosixMappedFile : public MappedFile {
 public:
  PosixMappedFile(void* addr, size_t size) : addr_(addr), size_(size) {}
  ~PosixMappedFile() override {
    if (addr_ != nullptr) ::munmap(addr_, size_);
  }
  uint8_t* data() const override { return static_cast<uint8_t*>(addr_); }
  size_t size() const override { return size_; }

 private:
  void* addr_;
  size_t size_;
};

class PosixFileSystem : public FileSystem {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus("create", path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
  }

  Result<std::shared_ptr<MappedFile>> MapFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return ErrnoStatus("stat", path, err);
    }
    size_t size = static_cast<size_t>(st.st_size);
    if (size == 0) {
      ::close(fd);
      return Status(ErrorCode::kParse, "cannot map the empty file " + path);
    }
    // MAP_PRIVATE + PROT_WRITE: a caller may modify the tensor in place; its pages are then
    // copied privately instead of faulting, and the file is never changed.
    void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    int err = errno;
    ::close(fd);  // the mapping keeps the file alive
    if (addr == MAP_FAILED) return ErrnoStatus("mmap", path, err);
    return std::shared_ptr<MappedFile>(std::make_shared<PosixMappedFile>(addr, size));
  }

  Result<std::string> ReadFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    std::string out;
    char buffer[1 << 16];
    while (true) {
      ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        ::close(fd);
        return ErrnoStatus("read", path, err);
      }
      if (n == 0) break;
      out.append(buffer, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
  }

  Result<uint64_t> FileSize(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoStatus("stat", path, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  bool Exists(const std::string& path) override {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
  }

  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) return ErrnoStatus("list", path, errno);
    std::vector<std::string> names;
    while (struct dirent* entry = ::readdir(dir)) {
      std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    ::closedir(dir);
    return names;
  }

  Status CreateDir(const std::string& path) override {
    // Each prefix ending before a '/', then the whole path.
    for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
      const std::string prefix = path.substr(0, slash);
      if (!prefix.empty() && ::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
        return ErrnoStatus("mkdir", prefix, errno);
      }
      if (slash == std::string::npos) break;
    }
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoStatus("mkdir", path, errno);
    if (!S_ISDIR(st.st_mode)) return ErrnoStatus("mkdir", path, ENOTDIR);
    return Status::Ok();
  }

  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoStatus("remove", path, errno);
    return Status::Ok();
  }

  Status RemoveAll(const std::string& path) override {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      return errno == ENOENT ? Status::Ok() : ErrnoStatus("stat", path, errno);
    }
    if (S_ISDIR(st.st_mode)) {
      auto names = ListDir(path);
      if (!names.ok()) return names.TakeStatus();
      for (const std::string& name : *names) {
        DISCOMFORT_RETURN_IF_ERROR(RemoveAll(path + "/" + name));
      }
      if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("remove", path, errno);
      return Status::Ok();
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("remove", path, errno);
    return Status::Ok();
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoStatus("rename " + from + " to", to, errno);
    }
    return Status::Ok();
  }

  Status ReplaceDir(const std::string& from, const std::string& to) override {
    if (!Exists(to)) return Rename(from, to);
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_EXCHANGE) == 0) {
      return RemoveAll(from);  // `from` now holds the old directory
    }
    if (errno != EINVAL && errno != ENOSYS) {
      return ErrnoStatus("exchange " + from + " with", to, errno);
    }
    // A file system without RENAME_EXCHANGE: move the old one aside first. A crash between
    // the two renames leaves the old snapshot at `to`.old.
    const std::string aside = to + ".old";
    DISCOMFORT_RETURN_IF_ERROR(RemoveAll(aside));
    DISCOMFORT_RETURN_IF_ERROR(Rename(to, aside));
    DISCOMFORT_RETURN_IF_ERROR(Rename(from, to));
    return RemoveAll(aside);
  }

  Status SyncDir(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return ErrnoStatus("fsync", path, err);
    return Status::Ok();
  }

  bool ProcessAlive(int pid) override {
    if (pid <= 0) return false;
    struct stat st;
    if (::stat("/proc/self", &st) == 0) {
      return ::stat(("/proc/" + std::to_string(pid)).c_str(), &st) == 0;
    }
    // No /proc: signal 0 probes without sending anything.
    return ::kill(pid, 0) == 0 || errno == EPERM;
  }
};

}  // namespace

FileSystem* FileSystem::Default() {
  static PosixFileSystem* const kPosix = new PosixFileSystem();
  return kPosix;
}

// ---- FaultInjectingFileSystem ----

class FaultInjectingFileSystem::FaultyFile : public WritableFile {
 public:
  FaultyFile(FaultInjectingFileSystem* owner, std::unique_ptr<WritableFile> base)
      : owner_(owner), base_(std::move(base)) {}

  Status Append(const void* data, size_t size) override {
    Status fault;
    size_t allowed = owner_->Admit(size, &fault);
    if (allowed > 0) {
      DISCOMFORT_RETURN_IF_ERROR(base_->Append(data, allowed));
      owner_->bytes_written_ += allowed;
    }
    return fault;
  }

  Status Sync() override {
    if (owner_->sync_fails_) {
      ++owner_->faults_injected_;
      return Status(ErrorCode::kIO, "fsync: Input/output error (injected)");
    }
    return base_->Sync();
  }

  Status Close() override { return base_->Close(); }

 private:
  FaultInjectingFileSystem* owner_;
  std::unique_ptr<WritableFile> base_;
};

FaultInjectingFileSystem::FaultInjectingFileSystem(FileSystem* base) : base_(base) {}

void FaultInjectingFileSystem::SetFreeSpace(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  space_limited_ = true;
  free_bytes_ = bytes;
}

void FaultInjectingFileSystem::FailWritesAfter(uint64_t successful_appends) {
  std::lock_guard<std::mutex> lock(mu_);
  write_errors_armed_ = true;
  appends_before_error_ = successful_appends;
}

void FaultInjectingFileSystem::ClearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  space_limited_ = false;
  write_errors_armed_ = false;
  rename_fails_ = false;
  sync_fails_ = false;
}

size_t FaultInjectingFileSystem::Admit(size_t size, Status* fault) {
  std::lock_guard<std::mutex> lock(mu_);
  if (write_errors_armed_) {
    if (appends_before_error_ == 0) {
      ++faults_injected_;
      *fault = Status(ErrorCode::kIO, "write: Input/output error (injected)");
      return 0;
    }
    --appends_before_error_;
  }
  if (!space_limited_) return size;
  if (size <= free_bytes_) {
    free_bytes_ -= size;
    return size;
  }
  size_t fits = static_cast<size_t>(free_bytes_);
  free_bytes_ = 0;
  ++faults_injected_;
  *fault = Status(ErrorCode::kNoSpace, "write: No space left on device (injected)");
  return fits;
}

Result<std::unique_ptr<WritableFile>> FaultInjectingFileSystem::NewWritableFile(
    const std::string& path) {
  auto file = base_->NewWritableFile(path);
  if (!file.ok()) return file.TakeStatus();
  return std::unique_ptr<WritableFile>(new FaultyFile(this, std::move(file).value()));
}

Result<std::shared_ptr<MappedFile>> FaultInjectingFileSystem::MapFile(const std::string& path) {
  return base_->MapFile(path);
}
Result<std::string> FaultInjectingFileSystem::ReadFile(const std::string& path) {
  return base_->ReadFile(path);
}
Result<uint64_t> FaultInjectingFileSystem::FileSize(const std::string& path) {
  return base_->FileSize(path);
}
bool FaultInjectingFileSystem::Exists(const std::string& path) { return base_->Exists(path); }
Result<std::vector<std::string>> FaultInjectingFileSystem::ListDir(const std::string& path) {
  return base_->ListDir(path);
}
Status FaultInjectingFileSystem::CreateDir(const std::string& path) {
  return base_->CreateDir(path);
}
Status FaultInjectingFileSystem::RemoveFile(const std::string& path) {
  return base_->RemoveFile(path);
}
Status FaultInjectingFileSystem::RemoveAll(const std::string& path) {
  return base_->RemoveAll(path);
}
Status FaultInjectingFileSystem::Rename(const std::string& from, const std::string& to) {
  if (rename_fails_) {
    ++faults_injected_;
    return Status(ErrorCode::kIO,
                  "rename " + from + " to " + to + ": Input/output error (injected)");
  }
  return base_->Rename(from, to);
}
Status FaultInjectingFileSystem::ReplaceDir(const std::string& from, const std::string& to) {
  if (rename_fails_) {
    ++faults_injected_;
    return Status(ErrorCode::kIO,
                  "rename " + from + " to " + to + ": Input/output error (injected)");
  }
  return base_->ReplaceDir(from, to);
}
Status FaultInjectingFileSystem::SyncDir(const std::string& path) { return base_->SyncDir(path); }
bool FaultInjectingFileSystem::ProcessAlive(int pid) { return base_->ProcessAlive(pid); }

}  // namespace discomfort::storage
