"""The kustomize overlays render, validate strictly offline, and agree with their sources."""

from __future__ import annotations

import copy
import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from relmon.topics import INPUT_TOPICS, contract_topics
from tests.deploy import K8S, RULES_FILE, RUNBOOK_BASE_URL, require_tool

OVERLAYS = ("dev", "prod")
K8S_VERSIONS = ("1.30.0", "1.37.0")  # oldest supported, newest schema kubernetes-validate ships
CRD_DIR = K8S / "crds"
OBJECT_META = "/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
NAMESPACES = {"dev": "relmon-dev", "prod": "relmon"}


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    kubectl = require_tool("kubectl", "kubectl >= 1.27, kustomize v5 built in")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: tuple[dict[str, Any], ...], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in of_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


# --- custom resources: vendored CRD schemas made strict ----------------------------------
def strict(node: Any) -> Any:
    """An OpenAPI v3 CRD schema as strict JSON Schema (unknown properties rejected)."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    out.pop("description", None)
    if node.get("nullable"):
        out.pop("nullable")
        out["type"] = [node["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in node and "additionalProperties" not in node and not preserve:
        out["additionalProperties"] = False
    return out


@functools.cache
def definitions_resource() -> Resource[Any]:
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    newest = f"v{K8S_VERSIONS[-1]}-local-strict"
    data = json.loads((schemas / newest / "_definitions.json").read_text(encoding="utf-8"))
    return Resource.from_contents(data)


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.Draft202012Validator]:
    validators = {}
    registry: Registry[Any] = definitions_resource() @ Registry()
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        api_version = f"{crd['group']}/{crd['version']}"
        schema = strict(copy.deepcopy(crd["openAPIV3Schema"]))
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://kubernetes.io/api/crd/{path.stem}.json"
        schema["properties"]["apiVersion"] = {"const": api_version}
        schema["properties"]["kind"] = {"const": crd["kind"]}
        schema["properties"]["metadata"] = {"$ref": OBJECT_META}
        schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind"})
        validators[(api_version, crd["kind"])] = jsonschema.Draft202012Validator(
            schema, registry=registry
        )
    return validators


def validate(doc: dict[str, Any]) -> None:
    key = (doc["apiVersion"], doc["kind"])
    if key in crd_validators():
        crd_validators()[key].validate(doc)
        return
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


# --- tests -------------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_every_document_validates_strictly(overlay: str) -> None:
    """Every rendered document, built-in or custom, passes strict offline schema validation."""
    docs = render(overlay)
    kinds = {doc["kind"] for doc in docs}
    assert {
        "StatefulSet", "Service", "ConfigMap", "PodDisruptionBudget", "ScaledObject",
        "ServiceMonitor", "PrometheusRule", "KafkaTopic", "ServiceAccount",
    } <= kinds  # fmt: skip
    for doc in docs:
        try:
            validate(doc)
        except (jsonschema.ValidationError, kubernetes_validate.utils.SchemaNotFoundError) as exc:
            name = f"{doc['kind']}/{doc['metadata']['name']}"
            pytest.fail(f"{overlay}: {name}: {getattr(exc, 'message', exc)}", pytrace=False)


def test_strict_validation_rejects_unknown_fields() -> None:
    """The validators reject a misspelt field in a built-in kind and in a custom resource."""
    docs = render("prod")
    sts = copy.deepcopy(one(docs, "StatefulSet"))
    sts["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(jsonschema.ValidationError):
        validate(sts)
    for kind in ("ScaledObject", "ServiceMonitor", "KafkaTopic", "PrometheusRule"):
        doc = copy.deepcopy(of_kind(docs, kind)[0])
        doc["spec"]["replicaz"] = 1
        with pytest.raises(jsonschema.ValidationError):
            validate(doc)
    monitor = copy.deepcopy(one(docs, "ServiceMonitor"))
    monitor["metadata"]["lables"] = {}
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_rule_carries_exactly_the_rules_file(overlay: str) -> None:
    """The PrometheusRule's groups equal the groups of deploy/monitoring/rules/relmon-alerts.yml,
    but for the runbook links, which are on the configured base."""
    rule = one(render(overlay), "PrometheusRule")
    expected = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    for group in expected:
        for alert in group["rules"]:
            if "alert" in alert:
                anchor = alert["annotations"]["runbook_url"].split("#", 1)[1]
                alert["annotations"]["runbook_url"] = f"{RUNBOOK_BASE_URL}#{anchor}"
    assert rule["spec"]["groups"] == expected


def test_generated_base_files_are_fresh() -> None:
    """`deploy/k8s/build.py --check` passes: PrometheusRule, topics and policy are up to date."""
    result = subprocess.run(
        [sys.executable, str(K8S / "build.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topics_partitions_and_autoscaling_agree(overlay: str) -> None:
    """KafkaTopics are the contract's topics; RELMON_PARTITIONS matches; KEDA never exceeds it."""
    docs = render(overlay)
    config = one(docs, "ConfigMap", _config_name(docs))["data"]
    partitions = int(config["RELMON_PARTITIONS"])
    topics = {t["spec"]["topicName"]: t for t in of_kind(docs, "KafkaTopic")}
    expected = {spec.name for spec in contract_topics(partitions)}
    assert expected | {f"{config['RELMON_WORKER_ID']}-ticks"} == set(topics)
    for name in INPUT_TOPICS:
        assert topics[name]["spec"]["partitions"] == partitions
    assert topics["relmon.suppressions"]["spec"]["config"]["cleanup.policy"] == "compact"
    scaled = one(docs, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "relmon",
    }
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    assert scaled["spec"]["maxReplicaCount"] <= partitions
    query = scaled["spec"]["triggers"][0]["metadata"]["query"]
    assert "relmon_consumer_lag" in query
    assert f'namespace="{NAMESPACES[overlay]}"' in query


def _config_name(docs: tuple[dict[str, Any], ...]) -> str:
    names = [d["metadata"]["name"] for d in of_kind(docs, "ConfigMap")]
    return next(n for n in names if n.startswith("relmon-config-"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_probes_secrets_and_scraping_fit_together(overlay: str) -> None:
    """Probes hit /healthz and /readyz, secrets are referenced, the monitor scrapes workers."""
    docs = render(overlay)
    sts = one(docs, "StatefulSet")
    pod = sts["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["args"] == ["worker"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"][0]["containerPort"] == 6066
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert [v["metadata"]["name"] for v in sts["spec"]["volumeClaimTemplates"]] == ["state"]
    secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert secrets["RELMON_API_TOKEN"] == "relmon-api"
    if overlay == "prod":
        assert secrets["RELMON_SASL_PASSWORD"] == "relmon-kafka"
    else:
        assert "RELMON_SASL_PASSWORD" not in secrets  # plaintext dev Kafka
    assert not any(e["name"] == "RELMON_API_TOKEN" and "value" in e for e in container["env"])

    pod_labels = pod["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    headless = services[sts["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    for service in services.values():
        assert service["spec"]["selector"].items() <= pod_labels.items()
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    monitor = one(docs, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [s for s in services.values() if selector.items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in scraped] == [headless["metadata"]["name"]]
    assert scraped[0]["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "relmon"  # job=relmon
    assert monitor["spec"]["endpoints"][0]["authorization"]["credentials"]["name"] == "relmon-api"
