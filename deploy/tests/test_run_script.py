"""scripts/run, the one-command local stack, with the real binaries (debug build)
on free loopback ports: it starts everything, says where, and leaves nothing
behind however it is stopped."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, START_LIMIT, grpc_health, http_get, need

SERVICES_BY_VAR = {
    "game-service": "GAME_SERVICE_LISTEN",
    "ws-gateway": "WS_GATEWAY_LISTEN",
    "html-gallows": "HTML_GALLOWS_LISTEN",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def pid_listening_on(port: int) -> int:
    out = subprocess.run(
        [need("ss", "install iproute2"), "-Hltnp", f"sport = :{port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(re.search(r"pid=(\d+)", out).group(1))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not running either.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


class Run:
    """scripts/run as a user starts it, in its own process group like a shell job."""

    def __init__(self, ports: dict[str, int], binaries, **extra_env):
        env = dict(os.environ, HANGMAN_SKIP_BUILD="1", HANGMAN_PROFILE="dev", **extra_env)
        env["CARGO_TARGET_DIR"] = str(binaries["game-service"].parent.parent)
        for service, var in SERVICES_BY_VAR.items():
            env[var] = f"127.0.0.1:{ports[service]}"
        self.proc = subprocess.Popen(
            [str(REPO / "scripts" / "run")],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._eof = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.strip() == "ready":
                self._ready.set()
        self._ready.set()
        self._eof.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self):
        self._ready.wait(START_LIMIT * 2)
        assert "ready\n" in self.lines, f"scripts/run never got ready:\n{self.output}"

    def wait(self) -> int:
        try:
            code = self.proc.wait(60)
            self._eof.wait(10)
            return code
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def ports():
    return {service: free_port() for service in SERVICES_BY_VAR}


@pytest.fixture
def stack(ports, binaries, web_dist):
    run = Run(ports, binaries)
    yield run
    if run.proc.poll() is None:
        run.proc.terminate()
        run.wait()


def assert_all_gone(ports, pids):
    for service, port in ports.items():
        assert not listening(port), f"{service} still listening on {port}"
    for pid in pids:
        assert not alive(pid), f"process {pid} is still running"


def assert_up_and_said_where(run, ports):
    run.wait_ready()
    out = run.output
    assert f"http://127.0.0.1:{ports['ws-gateway']}/" in out
    assert f"http://127.0.0.1:{ports['html-gallows']}/hangman" in out
    assert f"grpcurl -plaintext 127.0.0.1:{ports['game-service']} list" in out

    status, _, body = http_get(f"127.0.0.1:{ports['ws-gateway']}", "/")
    assert status == 200 and b"<html" in body.lower(), "the SPA is served"
    assert http_get(f"127.0.0.1:{ports['html-gallows']}", "/hangman")[0] == 200
    assert '"status": "SERVING"' in grpc_health(f"127.0.0.1:{ports['game-service']}")


def test_starts_everything_says_where_and_stops_on_sigterm(stack, ports):
    assert_up_and_said_where(stack, ports)
    pids = [pid_listening_on(port) for port in ports.values()]
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.wait() == 0, stack.output
    assert_all_gone(ports, pids)


def test_a_quiet_rust_log_still_starts_everything_and_is_honoured(ports, binaries, web_dist):
    # scripts/run reads each address from an INFO line (`listening on ADDR`), which the
    # services log whatever the filter (its target, `listening`, is added at info).
    run = Run(ports, binaries, RUST_LOG="warn")
    try:
        assert_up_and_said_where(run, ports)
    finally:
        run.proc.send_signal(signal.SIGTERM)
        assert run.wait() == 0, run.output
    # Everywhere else the filter holds: each service logs "shutting down" at INFO.
    assert "service_kit::lifecycle" not in run.output, run.output


def test_ctrl_c_stops_everything_and_exits_zero(stack, ports):
    stack.wait_ready()
    pids = [pid_listening_on(port) for port in ports.values()]
    # The terminal sends SIGINT to the whole foreground process group.
    os.killpg(stack.proc.pid, signal.SIGINT)
    assert stack.wait() == 0, stack.output
    assert_all_gone(ports, pids)


def test_a_service_that_dies_is_named_and_the_others_are_stopped(stack, ports):
    stack.wait_ready()
    pids = [pid_listening_on(port) for port in ports.values()]
    os.kill(pid_listening_on(ports["html-gallows"]), signal.SIGKILL)
    assert stack.wait() != 0
    assert re.search(r"html-gallows exited on its own with code \d+", stack.output), stack.output
    assert_all_gone(ports, pids)


def test_a_port_in_use_is_refused_before_anything_starts(ports, binaries):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["html-gallows"]))
        squatter.listen()
        run = Run(ports, binaries)
        assert run.wait() != 0
    out = run.output
    assert f"port {ports['html-gallows']} is already in use" in out
    assert "HTML_GALLOWS_LISTEN=" in out, "says which variable moves the service"
    assert not listening(ports["game-service"]) and not listening(ports["ws-gateway"])
    assert "Starting" not in out


def test_killing_the_whole_process_group_leaves_nothing_behind(stack, ports):
    # What a test harness or a closed terminal does when scripts/run cannot react.
    stack.wait_ready()
    pids = [pid_listening_on(port) for port in ports.values()]
    os.killpg(stack.proc.pid, signal.SIGKILL)
    stack.wait()
    # A killed multi-threaded process shows as a zombie as soon as its main thread is
    # gone, but holds its sockets until its last thread has exited: wait for both.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        any(alive(pid) for pid in pids) or any(listening(port) for port in ports.values())
    ):
        time.sleep(0.1)
    assert_all_gone(ports, pids)


def test_a_service_that_fails_to_start_is_named_and_nothing_is_left(ports, binaries, tmp_path):
    missing = tmp_path / "no-such-words.txt"
    run = Run(ports, binaries, GAME_SERVICE_DICTIONARY=str(missing))
    assert run.wait() != 0
    out = run.output
    assert "game-service exited with code 1 before it was ready" in out, out
    assert str(missing) in out, "the service's own error reaches the terminal"
    assert "Starting ws-gateway" not in out
    assert not any(listening(port) for port in ports.values())
