"""Every overlay renders, and every object it renders is one a cluster accepts:
core objects against the Kubernetes OpenAPI schemas (kubernetes-validate, strict),
Gateway API objects against the v1.6.1 CRD schemas vendored in deploy/tests/crds/."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from conftest import REPO

# The Kubernetes version the manifests are written for (preStop `sleep` is GA here).
KUBERNETES_VERSION = "1.34.0"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
CRDS = Path(os.environ.get("HANGMAN_K8S_CRDS", Path(__file__).parent / "crds"))


def gateway_api_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the CRD's openAPIV3Schema, made strict like the API
    server's field validation: an object with declared properties takes no others."""
    if not CRDS.is_dir():
        pytest.fail(f"Gateway API CRDs not found at {CRDS}")
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def strict(schema: dict) -> dict:
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            if isinstance(value, (dict, list)):
                strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


@pytest.fixture(scope="module")
def crd_schemas():
    return gateway_api_schemas()


def validate_gateway_api(doc: dict, schemas: dict) -> None:
    key = (doc["apiVersion"], doc["kind"])
    assert key in schemas, f"no Gateway API v1.6.1 schema for {key}"
    # metadata is checked by the API server itself, not by the CRD's schema.
    body = {k: v for k, v in doc.items() if k != "metadata"}
    jsonschema.validate(body, schemas[key])


def validate(doc: dict, schemas: dict) -> None:
    if doc["apiVersion"].startswith(GATEWAY_API_GROUP + "/"):
        validate_gateway_api(doc, schemas)
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_overlay_renders_the_whole_system(manifests):
    kinds = {(d["kind"], d["metadata"]["name"]) for d in manifests.docs}
    for expected in [
        ("Namespace", "hangman-dev" if manifests.overlay == "dev" else "hangman"),
        ("Deployment", "game-service"),
        ("Deployment", "html-gallows"),
        ("Deployment", "ws-gateway-v1"),
        ("Deployment", "ws-gateway-v2"),
        ("Gateway", "hangman"),
        ("NetworkPolicy", "game-service"),
        ("Service", "game-service"),
        ("Service", "game-service-headless"),
        ("HorizontalPodAutoscaler", "game-service"),
        ("PodDisruptionBudget", "game-service"),
    ]:
        assert expected in kinds
    redis = {("Deployment", "redis"), ("Service", "redis"), ("NetworkPolicy", "redis")}
    if manifests.overlay == "dev":
        assert redis <= kinds, "dev runs its own Redis"
    else:
        assert not redis & kinds, "prod uses an external Redis"


def test_every_rendered_object_validates(manifests, crd_schemas):
    for doc in manifests.docs:
        try:
            validate(doc, crd_schemas)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as error:
            pytest.fail(f"{manifests.overlay}: {doc['kind']} {doc['metadata']['name']}: {error}")


def test_every_namespaced_object_lands_in_the_overlay_namespace(manifests):
    (namespace,) = manifests.of_kind("Namespace")
    for doc in manifests.docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace["metadata"]["name"]


# The validators above must be able to say no, or they prove nothing.
def test_validation_rejects_an_unknown_field_in_a_deployment(rendered):
    deployment = next(d for d in rendered["dev"] if d["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_validation_rejects_a_bad_http_route(rendered, crd_schemas):
    route = next(d for d in rendered["dev"] if d["kind"] == "HTTPRoute")
    unknown_field = copy.deepcopy(route)
    unknown_field["spec"]["rules"][0]["backendRef"] = unknown_field["spec"]["rules"][0][
        "backendRefs"
    ]
    bad_path_type = copy.deepcopy(route)
    bad_path_type["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Prefix"
    for broken in (unknown_field, bad_path_type):
        with pytest.raises(jsonschema.ValidationError):
            validate_gateway_api(broken, crd_schemas)
