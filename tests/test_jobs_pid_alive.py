"""Whether a job's process is gone: a zombie main thread is not the end of a process whose other threads
still run (and hold its files and locks)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from jobs.models import pid_alive

# The main thread leaves with pthread_exit while another thread sleeps: the process's leader is a zombie
# ("Z" in /proc/PID/stat) but the process runs on, as a killed worker's does while its threads exit.
LEADER_EXITS = (
    "import ctypes, threading, time\n"
    "threading.Thread(target=time.sleep, args=(60,)).start()\n"
    "ctypes.CDLL(None).pthread_exit(None)\n"
)


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]


def test_a_process_whose_main_thread_is_a_zombie_is_alive_until_its_threads_are_gone():
    child = subprocess.Popen([sys.executable, "-c", LEADER_EXITS])
    try:
        deadline = time.monotonic() + 20
        while state(child.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state(child.pid) == "Z"
        assert pid_alive(child.pid)  # its sleeping thread still runs
        child.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 20
        while pid_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(child.pid)  # every thread gone; a zombie until it is waited for
    finally:
        child.kill()
        child.wait(timeout=20)
    assert not pid_alive(child.pid)
