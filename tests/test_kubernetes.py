"""deploy/: every manifest is valid Kubernetes, and agrees with the image and the command line it runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from conftest import run_cli
from test_deploy import ROOT, _stages

from aecodec.server.app import DRAIN_NOTICE_S, SERVICE

DEPLOY = ROOT / "deploy"
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())  # the oldest this README supports, the newest known
KUSTOMIZATION = "kustomization.yaml"


def _manifests() -> dict[Path, dict[str, Any]]:
    return {p: yaml.safe_load(p.read_text()) for p in sorted(DEPLOY.glob("*/*.yaml")) if p.name != KUSTOMIZATION}


def _one(kind: str, folder: str) -> dict[str, Any]:
    (found,) = [m for p, m in _manifests().items() if m["kind"] == kind and p.parent.name == folder]
    return found


def _options(command: list[str]) -> dict[str, str]:
    """--flag value pairs of a command line (flags without a value map to '')."""
    out, i = {}, 0
    while i < len(command):
        if i + 1 < len(command) and not command[i + 1].startswith("--"):
            out[command[i]], i = command[i + 1], i + 2
        else:
            out[command[i]], i = "", i + 1
    return out


def _help_flags(*command: str) -> set[str]:
    code, out, err = run_cli(*command, "--help")
    assert code == 0, err
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", out))


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_kubernetes(version: str) -> None:
    manifests = _manifests()
    assert len(manifests) >= 10
    for path, manifest in manifests.items():
        kubernetes_validate.validate(manifest, version, strict=True)
        assert manifest["kind"] == "Namespace" or manifest["metadata"]["namespace"] == "aecodec", path


def test_every_kustomization_lists_exactly_its_folder() -> None:
    for kustomization in DEPLOY.glob(f"*/{KUSTOMIZATION}"):
        listed = yaml.safe_load(kustomization.read_text())["resources"]
        own = {p.name for p in kustomization.parent.glob("*.yaml")} - {KUSTOMIZATION}
        assert {r for r in listed if not r.startswith("../")} == own, kustomization
        assert all((kustomization.parent / r / KUSTOMIZATION).is_file() for r in listed if r.startswith("../"))


def test_the_server_deployment_agrees_with_the_image_and_codec_serve() -> None:
    server = _stages()["server"]
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", server, flags=re.M).group(1))
    image = _options(entrypoint[2:])
    deployment = _one("Deployment", "serving")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = _options(container["args"])
    assert set(args) | set(image) <= _help_flags("serve")
    assert "--insecure" not in args
    # Ports: the ones the image's command line opens, named as the Services and probes use them.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": int(image["--port"]), "health": int(image["--health-port"])}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == ports["health"], probe
    assert container["readinessProbe"]["grpc"]["service"] == SERVICE
    # The grace the server gives streams on SIGTERM fits in the pod's termination grace period.
    assert pod["terminationGracePeriodSeconds"] >= float(args["--grace"]) + DRAIN_NOTICE_S + 1
    # Mounts: models read-only where --models points; every secret file the command reads is in
    # the secrets volume under the name the command uses.
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["models"]["mountPath"] == image["--models"] and mounts["models"]["readOnly"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"] == {"claimName": "aecodec-models", "readOnly": True}
    projected = {
        f"{mounts['secrets']['mountPath']}/{item['path']}"
        for source in volumes["secrets"]["projected"]["sources"]
        for item in source["secret"]["items"]
    }
    assert {args["--token-file"], args["--tls-cert"], args["--tls-key"]} == projected
    # The stored streams live on a volume of their own, which --prepare fills before the pod is ready.
    assert "--prepare" in args and Path(args["--stream-cache"]).parent == Path(mounts["streams"]["mountPath"])
    assert "emptyDir" in volumes["streams"] and not mounts["streams"].get("readOnly")
    # The image's user, no privileges, nothing writable but /tmp and the stream cache.
    uid = int(re.search(r"^USER (\d+)$", server, flags=re.M).group(1))
    assert pod["securityContext"]["runAsUser"] == container["securityContext"]["runAsUser"] == uid
    assert container["securityContext"]["readOnlyRootFilesystem"] and pod["automountServiceAccountToken"] is False
    assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"]


def test_services_autoscaler_and_budget_point_at_the_server_pods() -> None:
    deployment = _one("Deployment", "serving")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    port_names = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    services = [m for p, m in _manifests().items() if m["kind"] == "Service" and p.parent.name == "serving"]
    assert {s["spec"].get("clusterIP") for s in services} == {None, "None"}  # one virtual IP, one headless
    for service in services:
        assert service["spec"]["selector"] == labels
        assert all(p["targetPort"] in port_names for p in service["spec"]["ports"])
    assert (
        _one("HorizontalPodAutoscaler", "serving")["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    )
    assert _one("PodDisruptionBudget", "serving")["spec"]["selector"]["matchLabels"] == labels
    ingress = _one("Ingress", "l7-proxy")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] in {s["metadata"]["name"] for s in services} and backend["port"]["name"] in port_names


def test_the_training_job_meets_at_its_first_pod() -> None:
    job = _one("Job", "training")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = container["args"]
    assert command[0] == "train"
    args = _options(command[2:])
    assert set(args) <= _help_flags("train")
    assert job["spec"]["completionMode"] == "Indexed"
    assert int(args["--nnodes"]) == job["spec"]["completions"] == job["spec"]["parallelism"]
    service = _one("Service", "training")
    host, port = args["--rdzv-endpoint"].rsplit(":", 1)
    assert host == f"{job['metadata']['name']}-0.{pod['subdomain']}" and pod["subdomain"] == service["metadata"]["name"]
    assert int(port) == service["spec"]["ports"][0]["port"] == container["ports"][0]["containerPort"]
    assert (
        service["spec"]["clusterIP"] == "None"
        and service["spec"]["selector"] == job["spec"]["template"]["metadata"]["labels"]
    )
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert Path(command[1]).parent.parent.as_posix() in mounts and Path(args["--output"]).parent.as_posix() in mounts
    train = _stages()["train"]
    assert json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", train, flags=re.M).group(1)) == ["codec"]
