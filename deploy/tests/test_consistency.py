"""The rendered manifests agree with themselves and with the real binaries.

Each Deployment's container is started here the way its pod would start it: the
files of its image (deploy/docker), the image's ENV, then the pod's env and
ConfigMaps and mounted Secrets, listening on loopback port 0 instead of
0.0.0.0:PORT and reaching a real local game service, which keeps its games in a
real local Redis. Its probes then have to answer. The dev overlay's Redis runs as
Debian's redis-server with the Deployment's arguments.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import secrets
import socket
import subprocess
from urllib.parse import quote, urlsplit

import pytest

from conftest import (
    ENV_REFERENCE,
    EXAMPLE_POD_IP,
    REPO,
    START_LIMIT,
    Service,
    env_twins,
    free_port,
    grpc_health,
    grpcurl,
    http_get,
    in_root,
    is_hangman_image,
    lay_out,
    secret_placeholder,
    service_of_image,
    start_redis,
    stop,
    wait_for_status,
    write_secret_mounts,
)

FRONT_ENDS = {"html-gallows", "ws-gateway-v1", "ws-gateway-v2"}
STORE_SECRET = {"name": "game-service-store", "key": "url"}
LONGPOLL_SECRET = {"name": "ws-gateway-longpoll", "key": "secret"}
ADVERTISE = "WS_GATEWAY_LONGPOLL_ADVERTISE"
README = REPO / "deploy" / "README.md"


def all_containers(manifests):
    """Every container of every Deployment, third-party ones (the dev Redis) included."""
    for deployment in manifests.of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            yield deployment, pod, container


def containers(manifests):
    """The containers of the three Hangman services (images built from deploy/docker)."""
    for deployment, pod, container in all_containers(manifests):
        if is_hangman_image(container["image"]):
            yield deployment, pod, container


def hangman_deployments(manifests):
    return [d for d, _, _ in containers(manifests)]


def gateways(manifests):
    """(Deployment, container) of each gateway version."""
    for deployment, _, container in containers(manifests):
        if deployment["metadata"]["name"].startswith("ws-gateway-"):
            yield deployment, container


def listen_address(env: dict[str, str]) -> tuple[str, str]:
    (name,) = [k for k in env if k.endswith("_LISTEN")]
    return name, env[name]


def pod_env(manifests, images, container: dict, **pod) -> dict[str, str]:
    """The environment the container starts with: its image's ENV, then the pod's."""
    image = images[service_of_image(container["image"])]
    return {**image.env, **manifests.container_env(container, **pod)}


def container_port(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return number


class Pod:
    """A Deployment's container running here as its pod would run it."""

    def __init__(
        self, manifests, deployment, tmp_path, images, binaries, web_dist, game_service, store
    ):
        self.pod_spec = deployment["spec"]["template"]["spec"]
        (self.container,) = self.pod_spec["containers"]
        self.service = service_of_image(self.container["image"])
        image = images[self.service]
        root = lay_out(image, tmp_path / "root", binaries, web_dist)
        write_secret_mounts(self.pod_spec, self.container, root)
        self.env = pod_env(manifests, images, self.container, pod_ip="127.0.0.1")
        self.listen_var, self.listen = listen_address(self.env)
        run_env = {k: in_root(v, root) for k, v in self.env.items()}
        run_env[self.listen_var] = "127.0.0.1:0"
        if ADVERTISE in run_env:
            # The pod IP and container port it advertises are, here, loopback and port 0,
            # which the gateway takes for the port it binds.
            host, advertised = run_env[ADVERTISE].rsplit(":", 1)
            assert advertised == self.listen.rsplit(":", 1)[1], run_env[ADVERTISE]
            run_env[ADVERTISE] = f"{host}:0"
        for key in run_env:
            if key.endswith("_GAME_SERVICE"):
                run_env[key] = game_service.url
        if "GAME_SERVICE_STORE" in run_env:
            # The store the Secret names (the dev Redis Service, or the operator's
            # external Redis) is, here, a Redis on loopback.
            run_env["GAME_SERVICE_STORE"] = store
        argv = [in_root(arg, root) for arg in image.entrypoint]
        self.process = Service(argv, run_env, root)
        self.addr = self.process.wait_listening()

    def stop(self):
        return self.process.stop()


@pytest.fixture
def start_pod(manifests, tmp_path, images, binaries, web_dist, game_service, redis_url):
    pods = []

    def start(deployment, store=redis_url):
        root = tmp_path / f"pod{len(pods)}"
        pod = Pod(manifests, deployment, root, images, binaries, web_dist, game_service, store)
        pods.append(pod)
        return pod

    yield start
    for pod in pods:
        pod.stop()


# --- probes and configuration against the binaries --------------------------------
def test_every_env_var_the_manifests_set_is_a_flag_of_the_binary(manifests, images, binaries):
    """...or only there to be expanded into one (`$(POD_IP)`)."""
    for deployment, _, container in containers(manifests):
        service = service_of_image(container["image"])
        known = env_twins(binaries[service])
        expanded = {
            name
            for var in container.get("env", [])
            for name in ENV_REFERENCE.findall(var.get("value", ""))
        }
        unknown = set(pod_env(manifests, images, container)) - known - expanded
        assert not unknown, f"{deployment['metadata']['name']}: {service} reads no {unknown}"


def test_containers_listen_on_all_interfaces_at_their_declared_port(manifests, images):
    for deployment, _, container in containers(manifests):
        _, listen = listen_address(pod_env(manifests, images, container))
        host, port = listen.rsplit(":", 1)
        assert host == "0.0.0.0", f"{deployment['metadata']['name']}: {listen}"
        assert [p["containerPort"] for p in container["ports"]] == [int(port)]


def test_every_probe_targets_the_port_and_path_the_binary_serves(manifests, start_pod):
    for deployment in hangman_deployments(manifests):
        pod = start_pod(deployment)
        declared_port = int(pod.listen.rsplit(":", 1)[1])
        for kind in ("livenessProbe", "readinessProbe"):
            probe = pod.container[kind]
            where = f"{manifests.overlay}: {deployment['metadata']['name']} {kind}"
            if "grpc" in probe:
                assert probe["grpc"]["port"] == declared_port, where
                assert '"status": "SERVING"' in grpc_health(pod.addr), where
            else:
                get = probe["httpGet"]
                assert container_port(pod.container, get["port"]) == declared_port, where
                assert wait_for_status(pod.addr, get["path"]) == 200, where


def test_game_service_is_ready_on_grpc_health_and_front_ends_on_http_probes(manifests):
    for deployment, _, container in containers(manifests):
        if service_of_image(container["image"]) == "game-service":
            # Ready: the native gRPC probe, SERVING only while the store answers. Alive:
            # the process answers HTTP (/metrics), whether Redis does or not.
            assert "grpc" in container["readinessProbe"]
            assert container["livenessProbe"]["httpGet"]["path"] == "/metrics"
        else:
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_game_service_without_redis_is_not_ready_but_alive(manifests, start_pod):
    """Redis down takes every replica out of the Services (gRPC health NOT_SERVING) but
    restarts none: the liveness probe does not follow the store."""
    deployment = manifests.get("Deployment", "game-service")
    pod = start_pod(deployment, store=f"redis://127.0.0.1:{free_port()}/0")
    assert '"status": "NOT_SERVING"' in grpc_health(pod.addr)
    liveness = pod.container["livenessProbe"]["httpGet"]
    assert container_port(pod.container, liveness["port"]) == int(pod.listen.rsplit(":", 1)[1])
    assert wait_for_status(pod.addr, liveness["path"]) == 200


def test_front_ends_reach_the_game_service_through_its_headless_service(manifests):
    """The front ends resolve the headless name to every ready replica and spread their
    connections over them; a cluster IP would pin each connection to one pod."""
    service = manifests.get("Service", "game-service-headless")
    (port,) = service["spec"]["ports"]
    for deployment, _, container in containers(manifests):
        env = manifests.container_env(container)
        targets = [v for k, v in env.items() if k.endswith("_GAME_SERVICE")]
        if deployment["metadata"]["name"] in FRONT_ENDS:
            assert targets == [f"http://game-service-headless:{port['port']}"]


def test_game_service_has_a_headless_service_beside_its_cluster_ip(manifests):
    headless = manifests.get("Service", "game-service-headless")["spec"]
    normal = manifests.get("Service", "game-service")["spec"]
    assert headless["clusterIP"] == "None"
    assert not headless.get("publishNotReadyAddresses"), "DNS names only ready replicas"
    assert "clusterIP" not in normal or normal["clusterIP"] != "None"
    # Both name the same pods and the gRPC port.
    assert headless["selector"] == normal["selector"]
    (deployment,) = manifests.selected_deployments(headless["selector"])
    assert deployment["metadata"]["name"] == "game-service"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for spec in (headless, normal):
        (port,) = spec["ports"]
        assert port["port"] == container_port(container, port["targetPort"]) == 50051
        assert port["appProtocol"] == "kubernetes.io/h2c"


def gateway_routes(manifests):
    """(version, {path prefix: rule}) of each gateway version's HTTPRoute."""
    for route in manifests.of_kind("HTTPRoute"):
        backends = {b["name"] for rule in route["spec"]["rules"] for b in rule["backendRefs"]}
        (backend,) = backends
        if backend.startswith("ws-gateway-"):
            rules = {}
            for rule in route["spec"]["rules"]:
                (match,) = rule["matches"]
                assert match["path"]["type"] == "PathPrefix", match
                rules[match["path"]["value"]] = rule
            yield backend.removeprefix("ws-gateway-"), rules


def test_each_gateway_version_serves_its_mount_and_spa_under_its_route(manifests, start_pod):
    versions = []
    for version, rules in gateway_routes(manifests):
        versions.append(version)
        (backend,) = rules[f"/ws/{version}"]["backendRefs"]
        service = manifests.get("Service", backend["name"])
        (deployment,) = manifests.selected_deployments(service["spec"]["selector"])
        assert deployment["metadata"]["name"] == f"ws-gateway-{version}"
        pod = start_pod(deployment)
        mount, static = pod.env["WS_GATEWAY_MOUNT"], pod.env["WS_GATEWAY_STATIC_PATH"]
        assert mount.startswith(f"/ws/{version}/") and static.startswith(f"/ws/{version}/")
        assert set(rules) == {f"/ws/{version}", f"{mount}/longpoll"}
        assert rules[f"{mount}/longpoll"]["backendRefs"] == [backend]
        assert wait_for_status(pod.addr, "/readyz") == 200
        status, _, body = http_get(pod.addr, static)
        assert status == 200 and b"<html" in body.lower(), f"{static}: {status} {body[:200]}"
        assert websocket_upgrade(pod.addr, f"{mount}/websocket?vsn=2.0.0") == 101
        # The npm client's long-poll fallback: a GET without a token opens a session.
        opened = longpoll(pod.addr, "GET", f"{mount}/longpoll?vsn=2.0.0")
        assert opened["status"] == 410 and opened["token"], opened
    assert sorted(versions) == ["v1", "v2"]


def test_longpoll_routes_outlast_a_poll_and_websocket_routes_have_no_deadline(manifests):
    """A poll is held up to the window, then may be forwarded once to the replica holding
    its session: the route's deadline leaves that 10 s or more. A WebSocket is one request
    as long as the game: its route has none (0s)."""
    for version, rules in gateway_routes(manifests):
        env = manifests.container_env(manifests.container(f"ws-gateway-{version}"))
        window = parse_seconds(env["WS_GATEWAY_LONGPOLL_WINDOW"])
        longpoll_rule = rules[f"{env['WS_GATEWAY_MOUNT']}/longpoll"]
        assert parse_seconds(longpoll_rule["timeouts"]["request"]) >= window + 10, version
        assert "backendRequest" not in longpoll_rule["timeouts"], "a forward is one request"
        assert rules[f"/ws/{version}"]["timeouts"] == {"request": "0s"}, version


def longpoll(addr: str, method: str, path: str, body: str = "") -> dict:
    """One long-poll request (a GET or an ndjson POST): its JSON answer, which says the
    status (the HTTP status is 200)."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=START_LIMIT)
    try:
        headers = {"Content-Type": "application/x-ndjson"} if method == "POST" else {}
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        answer = response.read()
        assert response.status == 200, f"{method} {path}: {response.status} {answer[:200]}"
        return json.loads(answer)
    finally:
        conn.close()


def test_each_gateway_advertises_its_pod_ip_and_container_port(manifests):
    for _, container in gateways(manifests):
        env = manifests.container_env(container)
        (port,) = container["ports"]
        assert env[ADVERTISE] == f"{EXAMPLE_POD_IP}:{port['containerPort']}"
        assert env["WS_GATEWAY_LISTEN"].endswith(f":{port['containerPort']}")


def test_a_longpoll_request_on_another_replica_reaches_its_session(manifests, start_pod):
    """Two replicas of each version, started as the manifests start them (one signing key,
    each advertising its own address): a session opened on one is joined and polled
    through the other, which forwards to the holder."""
    for version, _ in gateway_routes(manifests):
        deployment = manifests.get("Deployment", f"ws-gateway-{version}")
        holder, other = start_pod(deployment), start_pod(deployment)
        path = f"{holder.env['WS_GATEWAY_MOUNT']}/longpoll?vsn=2.0.0"
        token = quote(longpoll(holder.addr, "GET", path)["token"])
        join = '["1","1","hangman:game","phx_join",{}]'
        assert longpoll(other.addr, "POST", f"{path}&token={token}", join) == {"status": 200}
        polled = longpoll(other.addr, "GET", f"{path}&token={token}")
        assert polled["status"] == 200, polled
        reply = json.loads(polled["messages"][0])
        assert reply[:4] == ["1", "1", "hangman:game", "phx_reply"], reply
        assert reply[4]["status"] == "ok", reply


def test_longpoll_tokens_are_signed_with_a_key_every_replica_shares(manifests):
    """From a Secret, never a key of the pod's own (the binary's default, which another
    replica could not check): dev generates a public, development-only one, prod's is the
    operator's (documented) and not committed."""
    for _, container in gateways(manifests):
        (var,) = [v for v in container["env"] if v["name"] == "WS_GATEWAY_LONGPOLL_SECRET"]
        ref = var["valueFrom"]["secretKeyRef"]
        assert not ref.get("optional"), "no Secret, no pod: never a key per pod"
        key = manifests.container_env(container)["WS_GATEWAY_LONGPOLL_SECRET"]
        assert len(key.encode()) >= 32, "the gateway refuses a key under 32 bytes"
        if manifests.overlay == "dev":
            assert ref["name"].startswith(LONGPOLL_SECRET["name"] + "-"), "generated"
            assert "dev" in key and "never" in key, "a dev key says it is one"
        else:
            assert ref == LONGPOLL_SECRET
            assert key == secret_placeholder(ref), "prod renders no signing key"
    readme = README.read_text()
    assert f"kubectl create secret generic {LONGPOLL_SECRET['name']}" in readme
    assert f"--from-literal={LONGPOLL_SECRET['key']}=" in readme


def websocket_upgrade(addr: str, path: str, host: str = "", origin: str = "") -> int:
    """The status line's code of a real WebSocket handshake (with `Host: host` instead of the
    address, and an `Origin`, when given)."""
    ip, port = addr.rsplit(":", 1)
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    origin_header = f"Origin: {origin}\r\n" if origin else ""
    with socket.create_connection((ip, int(port)), timeout=10) as sock:
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host or addr}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"{origin_header}Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        status_line = sock.makefile("rb").readline().decode()
    return int(status_line.split()[1])


def public_origins(manifests) -> list[str]:
    """The origins browsers load the app from: each Gateway listener's hostname with its
    scheme; a listener without one is reached through a port-forward, on localhost."""
    origins = []
    for gateway in manifests.of_kind("Gateway"):
        for listener in gateway["spec"]["listeners"]:
            scheme = "https" if listener["protocol"] == "HTTPS" else "http"
            hostname = listener.get("hostname", "localhost:8080")
            origins.append(f"{scheme}://{hostname}")
    return origins


def test_each_gateway_version_admits_pages_of_the_public_origin_only(manifests, start_pod):
    """The gateway no longer trusts the Host header (a DNS-rebinding page sets it), so an
    overlay must name the origin its Gateway serves the SPA on; loopback is always allowed."""
    origins = public_origins(manifests)
    assert origins
    for deployment, container in gateways(manifests):
        name = deployment["metadata"]["name"]
        allowed = manifests.container_env(container).get("WS_GATEWAY_ALLOWED_ORIGINS", "")
        for origin in origins:
            if "://localhost" not in origin:
                assert origin in allowed.split(","), f"{name}: {origin} not in {allowed!r}"
        pod = start_pod(deployment)
        path = f"{pod.env['WS_GATEWAY_MOUNT']}/websocket?vsn=2.0.0"
        for origin in origins:
            host = origin.split("://", 1)[1]
            assert websocket_upgrade(pod.addr, path, host, origin) == 101, f"{name}: {origin}"
        rebinding = websocket_upgrade(pod.addr, path, "evil.example", "http://evil.example")
        assert rebinding == 403, f"{name}: a page on evil.example"


def test_html_route_sends_root_and_hangman_to_html_gallows(manifests, start_pod):
    route = manifests.get("HTTPRoute", "html-gallows")
    (rule,) = route["spec"]["rules"]
    prefixes = {m["path"]["value"] for m in rule["matches"]}
    assert prefixes == {"/", "/hangman"}
    assert rule["backendRefs"] == [{"name": "html-gallows", "port": 4001}]
    pod = start_pod(manifests.get("Deployment", "html-gallows"))
    assert wait_for_status(pod.addr, "/readyz") == 200
    assert http_get(pod.addr, "/hangman")[0] == 200
    status, headers, _ = http_get(pod.addr, "/")
    assert 300 <= status < 400 and headers["location"].endswith("/hangman")


# --- objects that refer to each other ---------------------------------------------
def test_every_service_selects_exactly_one_deployment_and_a_port_it_has(manifests):
    for service in manifests.of_kind("Service"):
        deployments = manifests.selected_deployments(service["spec"]["selector"])
        name = service["metadata"]["name"].removesuffix("-headless")
        assert [d["metadata"]["name"] for d in deployments] == [name]
        (container,) = deployments[0]["spec"]["template"]["spec"]["containers"]
        for port in service["spec"]["ports"]:
            container_port(container, port["targetPort"])


def test_every_route_points_at_an_existing_service_port_through_the_gateway(manifests):
    gateways = {g["metadata"]["name"] for g in manifests.of_kind("Gateway")}
    for route in manifests.of_kind("HTTPRoute"):
        assert {p["name"] for p in route["spec"]["parentRefs"]} <= gateways
        for rule in route["spec"]["rules"]:
            for backend in rule["backendRefs"]:
                service = manifests.get("Service", backend["name"])
                assert backend["port"] in [p["port"] for p in service["spec"]["ports"]]


def test_two_gateway_versions_run_side_by_side_with_their_own_config_and_tag(manifests):
    v1 = manifests.get("Deployment", "ws-gateway-v1")["spec"]["template"]["spec"]
    v2 = manifests.get("Deployment", "ws-gateway-v2")["spec"]["template"]["spec"]
    (c1,), (c2,) = v1["containers"], v2["containers"]
    assert c1["image"].split(":")[0] == c2["image"].split(":")[0]
    assert c1["image"] != c2["image"], "each version has its own image tag"
    assert c1["envFrom"] != c2["envFrom"], "each version has its own ConfigMap"
    assert manifests.container_env(c1)["WS_GATEWAY_MOUNT"] == "/ws/v1/socket"
    assert manifests.container_env(c2)["WS_GATEWAY_MOUNT"] == "/ws/v2/socket"


def test_network_policy_admits_both_front_ends_and_nothing_else(manifests):
    policy = manifests.get("NetworkPolicy", "game-service")["spec"]
    protected = manifests.selected_deployments(policy["podSelector"]["matchLabels"])
    assert [d["metadata"]["name"] for d in protected] == ["game-service"]
    assert "Ingress" in policy["policyTypes"]
    admitted = set()
    for rule in policy["ingress"]:
        for peer in rule["from"]:
            assert set(peer) == {"podSelector"}, "only pods of this namespace, by label"
            admitted |= {
                d["metadata"]["name"]
                for d in manifests.selected_deployments(peer["podSelector"]["matchLabels"])
            }
        assert [p["port"] for p in rule["ports"]] == [50051]
    assert admitted == FRONT_ENDS
    # It selects pods, so it holds whichever Service a client goes through: every pod
    # either game-service Service sends to carries the labels it selects.
    for name in ("game-service", "game-service-headless"):
        selector = manifests.get("Service", name)["spec"]["selector"]
        assert policy["podSelector"]["matchLabels"].items() <= selector.items(), name


def admits(policy: dict, peer_labels: dict, port: dict) -> bool:
    """Whether an Ingress NetworkPolicy lets pods with `peer_labels` (same namespace) reach a
    container `port` (number and name) of the pods it selects."""
    if "Ingress" not in policy["spec"].get("policyTypes", ["Ingress"]):
        return True
    for rule in policy["spec"].get("ingress", []):
        peers = rule.get("from")
        peer_ok = peers is None or any(
            set(peer) == {"podSelector"}
            and peer["podSelector"].get("matchLabels", {}).items() <= peer_labels.items()
            for peer in peers
        )
        names = (port["containerPort"], port["name"])
        ports = rule.get("ports")
        if peer_ok and (ports is None or any(p.get("port") in names for p in ports)):
            return True
    return False


def test_gateway_replicas_may_forward_long_polls_to_each_other(manifests):
    """A long-poll request is forwarded to the replica holding its session, at its pod IP and
    container port: any policy that isolates gateway pods must admit their own version's."""
    for deployment, container in gateways(manifests):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        (port,) = container["ports"]
        for policy in manifests.of_kind("NetworkPolicy"):
            selector = policy["spec"]["podSelector"].get("matchLabels", {})
            if selector.items() <= labels.items():
                assert admits(policy, labels, port), policy["metadata"]
        # ...which a policy admitting only other pods would not.
        isolating = {
            "spec": {
                "podSelector": {"matchLabels": labels},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "envoy"}}}]}],
            }
        }
        assert not admits(isolating, labels, port)


def test_autoscalers_and_disruption_budgets_cover_the_front_ends_and_game_service(manifests):
    hpas = manifests.of_kind("HorizontalPodAutoscaler")
    assert all(h["apiVersion"] == "autoscaling/v2" for h in hpas)
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas} == FRONT_ENDS | {"game-service"}
    for hpa in hpas:
        target = manifests.get("Deployment", hpa["spec"]["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"], "the autoscaler owns the replica count"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    budgets = set()
    for pdb in manifests.of_kind("PodDisruptionBudget"):
        (deployment,) = manifests.selected_deployments(pdb["spec"]["selector"]["matchLabels"])
        budgets.add(deployment["metadata"]["name"])
    assert budgets == FRONT_ENDS | {"game-service"}


def test_game_service_runs_two_replicas_or_more_and_rolls_out_one_at_a_time(manifests):
    """Games live in Redis, so any number of replicas share them; a rollout starts a new
    pod and waits for it to be ready before it stops an old one."""
    spec = manifests.get("Deployment", "game-service")["spec"]
    (hpa,) = [
        h
        for h in manifests.of_kind("HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "game-service",
        }
    ]
    assert hpa["spec"]["minReplicas"] >= 2, manifests.overlay
    assert "replicas" not in spec, "the autoscaler owns the replica count (two or more)"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    (pdb,) = [
        p
        for p in manifests.of_kind("PodDisruptionBudget")
        if manifests.selected_deployments(p["spec"]["selector"]["matchLabels"]) == [
            manifests.get("Deployment", "game-service")
        ]
    ]
    # A drain always leaves one serving, and never blocks: the autoscaler keeps more.
    assert pdb["spec"]["minAvailable"] == 1 and "maxUnavailable" not in pdb["spec"]
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    readme = README.read_text()
    assert "RollingUpdate" in readme and "game-service-headless" in readme


def test_game_service_keeps_games_in_the_redis_of_a_secret(manifests):
    """Several replicas are right only with a shared store: the store URL comes from the
    Secret game-service-store, rendered in dev (its own Redis), made by the operator in
    prod (documented)."""
    container = manifests.container("game-service")
    (store,) = [v for v in container["env"] if v["name"] == "GAME_SERVICE_STORE"]
    ref = store["valueFrom"]["secretKeyRef"]
    assert not ref.get("optional"), "no Secret, no pod: never a fallback to games in memory"
    url = manifests.container_env(container)["GAME_SERVICE_STORE"]
    if manifests.overlay == "dev":
        assert ref["name"].startswith("game-service-store-"), "generated, name-hashed"
        parts = urlsplit(url)
        assert parts.scheme == "redis" and parts.path == "/0"
        service = manifests.get("Service", parts.hostname)
        assert parts.port in [p["port"] for p in service["spec"]["ports"]]
        (redis,) = manifests.selected_deployments(service["spec"]["selector"])
        assert redis["metadata"]["name"] == "redis"
    else:
        assert ref == STORE_SECRET
        assert url == secret_placeholder(ref), "prod renders no store Secret"
        readme = README.read_text()
        assert "kubectl create secret generic game-service-store" in readme
        assert re.search(r"--from-literal=url='?rediss://", readme)


def test_game_service_closes_old_connections_so_clients_spread_again(manifests):
    container = manifests.container("game-service")
    env = manifests.container_env(container)
    age = parse_seconds(env["GAME_SERVICE_MAX_CONNECTION_AGE"])
    grace = parse_seconds(env["GAME_SERVICE_MAX_CONNECTION_AGE_GRACE"])
    assert 60 <= age <= 600, "often enough to spread after a scale-out, not per call"
    # Unary calls take at most the request timeout; watch streams get the grace.
    assert grace >= parse_seconds(env.get("GAME_SERVICE_REQUEST_TIMEOUT", "10s"))


# --- the dev overlay's Redis ------------------------------------------------------
OFFICIAL_REDIS = re.compile(r"^(docker\.io/(library/)?)?redis:7\.\d+\.\d+$")


def test_dev_runs_one_official_redis_and_prod_none(manifests):
    third_party = [
        (d["metadata"]["name"], c["image"])
        for d, _, c in all_containers(manifests)
        if not is_hangman_image(c["image"])
    ]
    if manifests.overlay == "prod":
        assert third_party == [], "prod uses an external Redis"
        assert not [d for d in manifests.docs if "redis" in d["metadata"]["name"]]
        return
    ((name, image),) = third_party
    assert name == "redis" and OFFICIAL_REDIS.match(image), f"{image}: official, pinned tag"
    deployment = manifests.get("Deployment", "redis")["spec"]
    assert deployment["replicas"] == 1 and deployment["strategy"] == {"type": "Recreate"}
    args = manifests.container("redis")["args"]
    assert args[0] == "redis-server"
    for pair in (["--save", ""], ["--appendonly", "no"], ["--maxmemory-policy", "noeviction"]):
        assert any(args[i : i + 2] == pair for i in range(len(args))), pair
    (port,) = manifests.container("redis")["ports"]
    assert arg_value(args, "--port") == str(port["containerPort"]) == "6379"


def arg_value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_dev_redis_admits_only_the_game_service(manifests):
    if manifests.overlay != "dev":
        return
    redis = [manifests.get("Deployment", "redis")]
    (policy,) = [
        p
        for p in manifests.of_kind("NetworkPolicy")
        if manifests.selected_deployments(p["spec"]["podSelector"]["matchLabels"]) == redis
    ]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    admitted = {
        d["metadata"]["name"]
        for peer in rule["from"]
        for d in manifests.selected_deployments(peer["podSelector"]["matchLabels"])
    }
    assert all(set(peer) == {"podSelector"} for peer in rule["from"])
    assert admitted == {"game-service"}
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]


def test_dev_redis_runs_restricted_with_only_data_writable(manifests):
    if manifests.overlay != "dev":
        return
    pod = manifests.get("Deployment", "redis")["spec"]["template"]["spec"]
    context = pod["securityContext"]
    # The official image's own user, redis: its entrypoint starts the server as that
    # user without switching from root.
    assert (context["runAsUser"], context["runAsGroup"]) == (999, 999)
    assert context["runAsNonRoot"] is True
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    assert set(mounts) == {"/data"} and "emptyDir" in mounts["/data"]


def test_dev_redis_starts_from_its_arguments_and_its_probes_answer(
    manifests, tmp_path, start_pod
):
    """Debian's redis-server takes the Deployment's arguments (only the port moved and
    loopback bound); the probes' commands answer; the game service, given the dev
    Secret's URL (pointed at it), serves and keeps a new game in it."""
    if manifests.overlay != "dev":
        return
    container = manifests.container("redis")
    port = free_port()
    args = [str(port) if a == "6379" else a for a in container["args"]]
    proc = start_redis(args, port, tmp_path / "data")
    try:
        for kind in ("livenessProbe", "readinessProbe"):
            command = [c.replace("6379", str(port)) for c in container[kind]["exec"]["command"]]
            assert subprocess.run(command, timeout=30).returncode == 0, kind
        for setting in (["save", ""], ["appendonly", "no"], ["maxmemory-policy", "noeviction"]):
            assert redis_cli(port, "config", "get", setting[0]) == setting
        service_env = manifests.container_env(manifests.container("game-service"))
        url = urlsplit(service_env["GAME_SERVICE_STORE"])
        local = url._replace(netloc=f"127.0.0.1:{port}").geturl()
        pod = start_pod(manifests.get("Deployment", "game-service"), store=local)
        assert '"status": "SERVING"' in grpc_health(pod.addr)
        create = "hangman.v1.HangmanService/CreateGame"
        created = subprocess.run(
            [grpcurl(), "-plaintext", "-d", "{}", pod.addr, create],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert created.returncode == 0, created.stderr
        game_id = json.loads(created.stdout)["gameId"]
        assert redis_cli(port, "exists", f"hangman:{{{game_id}}}") == ["1"]
    finally:
        stop(proc)
    # Redis's own probe fails once it is gone.
    command = [c.replace("6379", str(port)) for c in container["livenessProbe"]["exec"]["command"]]
    assert subprocess.run(command, timeout=30, capture_output=True).returncode != 0


def redis_cli(port: int, *command: str) -> list[str]:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), *command], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_every_container_runs_with_the_restricted_security_profile(manifests):
    for deployment, pod, container in all_containers(manifests):
        where = deployment["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] != 0, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["automountServiceAccountToken"] is False, where
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, where
        assert context["readOnlyRootFilesystem"] is True, where
        assert context["capabilities"] == {"drop": ["ALL"]}, where
    for namespace in manifests.of_kind("Namespace"):
        labels = namespace["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_container_has_requests_and_limits(manifests):
    for deployment, _, container in all_containers(manifests):
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) == {"cpu", "memory"}, deployment


def test_every_service_container_drains_before_it_stops(manifests):
    for deployment, pod, container in containers(manifests):
        where = deployment["metadata"]["name"]
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        shutdown = [
            parse_seconds(v)
            for k, v in manifests.container_env(container).items()
            if k.endswith(("_SHUTDOWN_TIMEOUT", "_REQUEST_TIMEOUT"))
        ]
        assert pod["terminationGracePeriodSeconds"] > pre_stop + max(shutdown, default=0), where


def parse_seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)s", value)
    assert match, f"write durations in seconds here, not {value}"
    return int(match.group(1))


def test_cookie_key_comes_from_a_secret_that_is_not_committed(manifests):
    # No Secret is rendered, so no key; dev's plain Redis URL and public long-poll key are
    # the exceptions.
    rendered = sorted(s["metadata"]["name"].rsplit("-", 1)[0] for s in manifests.of_kind("Secret"))
    if manifests.overlay == "dev":
        assert rendered == ["game-service-store", LONGPOLL_SECRET["name"]], rendered
    else:
        assert rendered == []
    pod = manifests.get("Deployment", "html-gallows")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    (item,) = volume["secret"]["items"]
    key_file = manifests.container_env(container)["HTML_GALLOWS_COOKIE_KEY_FILE"]
    assert key_file == f"{mount['mountPath']}/{item['path']}"
    readme = (REPO / "deploy" / "README.md").read_text()
    assert (
        f"kubectl create secret generic {volume['secret']['secretName']}" in readme
        and f"--from-literal={item['key']}=" in readme
    ), "deploy/README.md shows how to create the cookie key Secret"


def test_every_image_has_a_dockerfile(manifests):
    for _, _, container in containers(manifests):
        service = service_of_image(container["image"])  # one of SERVICES, or it fails
        assert (REPO / "deploy" / "docker" / f"{service}.Dockerfile").exists()

