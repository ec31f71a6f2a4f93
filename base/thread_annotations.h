// Clang thread-safety analysis (-Wthread-safety): lock discipline checked at compile time instead
// of stated in comments. Other compilers see empty macros. libstdc++'s std::mutex carries no
// annotations, so annotated state uses discomfort::Mutex / MutexLock below.
#pragma once

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define DISCOMFORT_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define DISCOMFORT_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) DISCOMFORT_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY DISCOMFORT_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) DISCOMFORT_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) DISCOMFORT_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) DISCOMFORT_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) DISCOMFORT_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) DISCOMFORT_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) DISCOMFORT_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RETURN_CAPABILITY(x) DISCOMFORT_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS DISCOMFORT_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace discomfort {

class CAPABILITY("mutex") Mutex {
 public:
  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

// std::unique_lock for Mutex, visible to the analysis: held from construction to destruction,
// except between Unlock() and Lock().
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() RELEASE() {
    if (held_) mu_.unlock();
  }
  void Unlock() RELEASE() {
    mu_.unlock();
    held_ = false;
  }
  void Lock() ACQUIRE() {
    mu_.lock();
    held_ = true;
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
  bool held_ = true;
};

// A condition variable waiting on a Mutex the caller holds (released while waiting).
class CondVar {
 public:
  void Wait(Mutex& mu) REQUIRES(mu) { cv_.wait(mu); }
  template <typename Predicate>
  void Wait(Mutex& mu, Predicate done) REQUIRES(mu) {
    cv_.wait(mu, done);
  }
  // False when the time ran out.
  template <typename TimePoint>
  bool WaitUntil(Mutex& mu, TimePoint when) REQUIRES(mu) {
    return cv_.wait_until(mu, when) == std::cv_status::no_timeout;
  }
  template <typename Duration, typename Predicate>
  bool WaitFor(Mutex& mu, Duration timeout, Predicate done) REQUIRES(mu) {
    return cv_.wait_for(mu, timeout, done);
  }
  void NotifyAll() { cv_.notify_all(); }
  void NotifyOne() { cv_.notify_one(); }

 private:
  std::condition_variable_any cv_;
};

}  // namespace discomfort
