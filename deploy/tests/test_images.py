"""The container images, as far as they can be checked without a container engine:
each service runs from a directory holding only what its Dockerfile's runtime stage
copies, with only the image's ENV, and needs no library the runtime image lacks."""

from __future__ import annotations

import re
import subprocess
import tomllib

import pytest

from conftest import (
    REPO,
    SERVICES,
    Service,
    grpc_health,
    http_get,
    in_root,
    lay_out,
    wait_for_status,
)

RUNTIME_BASE = "gcr.io/distroless/cc-debian12:nonroot"
# Shared libraries of gcr.io/distroless/cc-debian12 (glibc, libgcc, libstdc++, libssl).
DISTROLESS_CC_LIBS = {
    "linux-vdso.so.1",
    "ld-linux-x86-64.so.2",
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libgomp.so.1",
    "libssl.so.3",
    "libcrypto.so.3",
}


@pytest.fixture(params=SERVICES)
def image(request, images):
    return images[request.param]


def test_runtime_stage_is_distroless_nonroot_and_needs_no_shell(image):
    runtime = image.runtime
    assert runtime.base == RUNTIME_BASE
    assert runtime.args("USER") == ["nonroot"]
    assert not runtime.args("RUN"), "the runtime stage cannot run commands: no shell"
    assert not runtime.args("CMD")
    assert image.entrypoint == [f"/usr/local/bin/{image.service}"], "exec form, no shell"
    assert runtime.args("EXPOSE") == [image.env[listen_var(image)].rsplit(":", 1)[1]]


def listen_var(image) -> str:
    return f"{image.service.upper().replace('-', '_')}_LISTEN"


def test_image_listens_on_all_interfaces(image):
    assert image.env[listen_var(image)].startswith("0.0.0.0:")


def test_builder_compiles_the_release_binary_of_the_locked_workspace(image):
    (run,) = image.stage("rust").args("RUN")
    assert f"cargo build --release --locked --bin {image.service}" in run
    copied = {src for rest in image.stage("rust").args("COPY") for src in rest.split()[:-1]}
    members = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["members"]
    missing = set(members) - copied
    assert not missing, f"cargo needs every workspace member; not copied: {missing}"
    assert {"Cargo.toml", "Cargo.lock"} <= copied


def test_gateway_image_contains_the_built_spa(images):
    gateway = images["ws-gateway"]
    assert ("web", "/web/dist", "/srv/web") in gateway.copies()
    assert gateway.env["WS_GATEWAY_STATIC_DIR"] == "/srv/web"
    assert "npm ci" in " ".join(gateway.stage("web").args("RUN"))


def test_build_context_leaves_out_build_output(image):
    ignored = (image.dockerfile.parent / f"{image.dockerfile.name}.dockerignore").read_text()
    for entry in ("target", "**/node_modules", ".git", "web/dist"):
        assert entry in ignored.splitlines()


def test_binary_needs_only_libraries_of_the_runtime_image(image, binaries):
    out = subprocess.run(["ldd", str(binaries[image.service])], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    needed = {line.split()[0].rsplit("/", 1)[-1] for line in out.stdout.splitlines() if line}
    assert needed <= DISTROLESS_CC_LIBS, f"not in {RUNTIME_BASE}: {needed - DISTROLESS_CC_LIBS}"


@pytest.fixture
def container(image, tmp_path, binaries, web_dist):
    """The image's files in a fresh directory, and the image's environment only."""
    root = lay_out(image, tmp_path / "root", binaries, web_dist)
    env = {key: in_root(value, root) for key, value in image.env.items()}
    argv = [in_root(arg, root) for arg in image.entrypoint]
    return root, argv, env


def test_binary_from_the_image_files_answers_help(container):
    root, argv, env = container
    out = subprocess.run(argv + ["--help"], env=env, cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout


def test_binary_from_the_image_files_starts_and_serves(image, container, game_service):
    root, argv, env = container
    env[listen_var(image)] = "127.0.0.1:0"
    prefix = listen_var(image).removesuffix("LISTEN")
    if image.service != "game-service":
        env[prefix + "GAME_SERVICE"] = game_service.url
    service = Service(argv, env, root)
    try:
        addr = service.wait_listening()
        if image.service == "game-service":
            assert '"status": "SERVING"' in grpc_health(addr)
            assert http_get(addr, "/metrics")[0] == 200
        else:
            assert wait_for_status(addr, "/readyz") == 200
        if image.service == "ws-gateway":
            status, _, body = http_get(addr, "/")
            assert status == 200 and re.search(rb"<script[^>]+src=", body), "the SPA is served"
        if image.service == "html-gallows":
            assert http_get(addr, "/hangman")[0] == 200
    finally:
        assert service.stop() == 0, f"graceful stop on SIGTERM:\n{service.log}"
