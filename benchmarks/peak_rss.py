"""The peak resident memory of another process, as the kernel keeps it (VmHWM), polled until stopped:
used by the benchmarks and by the models-under-budget test, which run the CLI as a child process."""

import threading


class PeakRss:
    """Polls /proc/PID/status VmHWM until stopped; the highest value read is kept (0 if none was)."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid, self.peak, self.interval = pid, 0, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.peak = max(self.peak, int(line.split()[1]) * 1024)
            except (OSError, ValueError):
                pass  # the process has exited (or is exiting): the last value read stands
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak
