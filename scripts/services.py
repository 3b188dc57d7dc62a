"""The services as the scripts start them: a process on a free loopback port (its own instance;
nothing else is touched), its log, its RSS and CPU time, stopped in order.

Used by scripts/soak and scripts/bench-moves.
"""

import collections
import ctypes
import os
import re
import signal
import subprocess
import sys
import time

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def die_with_parent():
    # If this script is killed outright, the kernel stops the services too.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Service:
    def __init__(self, name, argv, env, log_dir):
        self.name = name
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches this script, which stops them in order
            preexec_fn=die_with_parent,
        )
        self.pid = self.proc.pid
        self.addr = None

    def wait_listening(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                text = ANSI.sub("", f.read().decode("utf-8", "replace"))
            m = re.search(r"listening on ([0-9.]+:\d+)", text)
            if m:
                host, port = m.group(1).rsplit(":", 1)
                self.addr = (host, int(port))
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode} at start")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not log 'listening on ADDR' within {timeout}s")

    def alive(self):
        return self.proc.poll() is None

    def rss_mib(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def cpu_seconds(self):
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return None

    def warnings(self):
        counts = collections.Counter()
        with open(self.log_path, "rb") as f:
            for line in f:
                line = ANSI.sub("", line.decode("utf-8", "replace"))
                for level in ("WARN", "ERROR"):
                    if f" {level} " in line or f'"level":"{level}"' in line:
                        counts[level] += 1
        return counts


def stop_services(services, timeout=15):
    for svc in reversed(services):
        if svc.alive():
            svc.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    codes = {}
    for svc in services:
        try:
            codes[svc.name] = svc.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{os.path.basename(sys.argv[0])}: {svc.name} did not stop within {timeout}s: killing it", file=sys.stderr)
            svc.proc.kill()
            codes[svc.name] = svc.proc.wait()
        svc.log.close()
    return codes


def http_get_sync(addr, path, timeout=5):
    import http.client

    conn = http.client.HTTPConnection(addr[0], addr[1], timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_ready(svc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_get_sync(svc.addr, "/readyz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        if not svc.alive():
            raise RuntimeError(f"{svc.name} exited with code {svc.proc.returncode} at start")
        time.sleep(0.2)
    raise RuntimeError(f"{svc.name} was not ready (/readyz) within {timeout}s")
