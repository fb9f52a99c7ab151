"""The deployment manifests are checked, not just written (issue 14 part 3).

- cluster.yaml passes Ray's own cluster-launcher validation (the checks `ray up` runs before it
  touches a cloud: defaults filled in, then the autoscaler's JSON schema and its cross-checks);
- deploy/kuberay/rayservice.yaml is what deploy/kuberay/generate.py writes from
  graphs/serve_config.gpu.yaml and cluster.yaml, and it satisfies the RayService CRD's OpenAPI
  schema, vendored from KubeRay (deploy/kuberay/crd/), with unknown fields refused as
  `kubectl apply --validate=strict` refuses them; its serveConfigV2 is a valid Serve config.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.serve.schema import ServeDeploySchema

from curator.core.settings import CuratorAppArgs
from deploy.kuberay import generate
from graphs.serve_env import CLUSTER_SERVE_ENV

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_YAML = ROOT / "cluster.yaml"
CRD = ROOT / "deploy" / "kuberay" / "crd" / "ray.io_rayservices.yaml"
MANIFEST = ROOT / "deploy" / "kuberay" / "rayservice.yaml"
IMAGE_ID = re.compile(r"^(ami-[0-9a-f]{8,17}|resolve:ssm:/[A-Za-z0-9_./-]+)$")


def _cluster() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _ray_validates(config: dict[str, Any]) -> None:
    validate_config(prepare_config(copy.deepcopy(config)))


def test_cluster_yaml_passes_rays_validation() -> None:
    _ray_validates(_cluster())


@pytest.mark.parametrize("break_it", [
    lambda c: c.update(max_worker=40),                                   # a misspelled key
    lambda c: c.update(max_workers=0),                                   # sum(min) > max
    lambda c: c.update(head_node_type="missing"),
    lambda c: c["available_node_types"]["gpu_worker"].update(max_workers="many"),
])
def test_rays_validation_catches_broken_cluster_configs(break_it: Any) -> None:
    config = _cluster()
    break_it(config)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        _ray_validates(config)


def test_cluster_yaml_names_machine_images_not_placeholders() -> None:
    for name, node_type in _cluster()["available_node_types"].items():
        image = node_type["node_config"]["ImageId"]
        assert IMAGE_ID.match(image), (name, image)


# --- KubeRay RayService -----------------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused: a structural schema's objects that list their
    properties get additionalProperties: false, unless they preserve unknown fields."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@cache
def _rayservice_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    assert crd["spec"]["names"]["kind"] == "RayService"
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    assert v1["served"] and v1["storage"]
    return _strict(v1["schema"]["openAPIV3Schema"])


def _validate(manifest: dict[str, Any]) -> None:
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayService"
    jsonschema.validate(manifest, _rayservice_schema(),
                        cls=jsonschema.Draft7Validator)


def _manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text())


def test_committed_manifest_is_the_generated_one() -> None:
    assert MANIFEST.read_text() == generate.render(), (
        "deploy/kuberay/rayservice.yaml is stale: run python -m deploy.kuberay.generate")
    assert generate.main(["--check"]) == 0


def test_rayservice_satisfies_the_crd_schema() -> None:
    _validate(_manifest())


@pytest.mark.parametrize("break_it", [
    lambda m: m["spec"]["rayClusterConfig"].update(enableInTreeAutoscalling=True),  # typo
    lambda m: m["spec"]["rayClusterConfig"]["autoscalerOptions"].update(upscalingMode="Fast"),
    lambda m: m["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].update(maxReplicas="16"),
    lambda m: m["spec"]["rayClusterConfig"]["headGroupSpec"].pop("template"),
    lambda m: m["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"][
        "containers"][0].pop("name"),
])
def test_schema_check_catches_broken_manifests(break_it: Any) -> None:
    manifest = _manifest()
    break_it(manifest)
    with pytest.raises(jsonschema.ValidationError):
        _validate(manifest)


def test_rayservice_carries_the_gpu_serve_config_and_cluster_bounds() -> None:
    manifest = _manifest()
    serve_text = (ROOT / "graphs" / "serve_config.gpu.yaml").read_text()
    assert manifest["spec"]["serveConfigV2"] == serve_text
    serve = ServeDeploySchema.model_validate(yaml.safe_load(serve_text))
    for app in serve.applications:
        CuratorAppArgs.model_validate(app.args)
    cluster = _cluster()
    ray_cluster = manifest["spec"]["rayClusterConfig"]
    assert ray_cluster["enableInTreeAutoscaling"] is True
    assert ray_cluster["autoscalerOptions"]["idleTimeoutSeconds"] == (
        cluster["idle_timeout_minutes"] * 60)
    groups = {g["groupName"]: g for g in ray_cluster["workerGroupSpecs"]}
    for name, node_type in cluster["available_node_types"].items():
        if name == cluster["head_node_type"]:
            continue
        group = groups[name.replace("_", "-")]
        assert (group["minReplicas"], group["maxReplicas"]) == (
            node_type.get("min_workers", 0), node_type["max_workers"])
    # The GPU group asks Kubernetes for the GPU that the model stages' num_gpus need.
    gpu = groups["gpu-worker"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu["nvidia.com/gpu"] == "1"
    needs_gpu = [d for app in serve.applications for d in app.deployments
                 if d.ray_actor_options and d.ray_actor_options.num_gpus]
    assert needs_gpu, "the GPU serve config puts no stage on a GPU"


def test_both_clusters_start_the_serve_controller_with_the_cluster_env() -> None:
    """The controller runs on the head: cluster.yaml's head start command and the manifest's
    head container set every CLUSTER_SERVE_ENV variable (packing, node compaction)."""
    assert CLUSTER_SERVE_ENV["RAY_SERVE_USE_PACK_SCHEDULING_STRATEGY"] == "1"
    (start,) = [c for c in _cluster()["head_start_ray_commands"] if "ray start" in c]
    for name, value in CLUSTER_SERVE_ENV.items():
        assert f"{name}={value} " in start, start
    ray_cluster = _manifest()["spec"]["rayClusterConfig"]
    (head,) = ray_cluster["headGroupSpec"]["template"]["spec"]["containers"]
    head_env = {e["name"]: e.get("value") for e in head["env"]}
    assert CLUSTER_SERVE_ENV.items() <= head_env.items()
    for group in ray_cluster["workerGroupSpecs"]:  # only the head's controller reads them
        (worker,) = group["template"]["spec"]["containers"]
        assert not {e["name"] for e in worker["env"]} & CLUSTER_SERVE_ENV.keys()


def test_generator_follows_its_inputs() -> None:
    """A changed serve config or node bound shows in the manifest (so the drift test can fail)."""
    cluster = _cluster()
    cluster["available_node_types"]["gpu_worker"]["max_workers"] = 3
    built = generate.build(serve_config_text="applications: []\n", cluster=cluster)
    assert built["spec"]["serveConfigV2"] == "applications: []\n"
    (gpu,) = [g for g in built["spec"]["rayClusterConfig"]["workerGroupSpecs"]
              if g["groupName"] == "gpu-worker"]
    assert gpu["maxReplicas"] == 3
    _validate(built)


def test_vendored_crd_is_the_recorded_file() -> None:
    import hashlib

    source = (CRD.parent / "SOURCE.md").read_text()
    assert hashlib.sha256(CRD.read_bytes()).hexdigest() in source
    assert "Apache License" in (CRD.parent / "LICENSE").read_text()


def test_the_local_serve_config_is_valid_and_keeps_the_canarys_polls_out_of_the_log() -> None:
    """graphs/serve_config.yaml is a valid Serve config; the Canary's routine watch calls (one
    every few seconds) write no access-log lines, while every other deployment keeps them."""
    raw = yaml.safe_load((ROOT / "graphs" / "serve_config.yaml").read_text())
    serve = ServeDeploySchema.model_validate(raw)
    deployments = {d.name: d for d in serve.applications[0].deployments}
    assert deployments["Canary"].logging_config.enable_access_log is False
    assert serve.logging_config.enable_access_log is True
    overriding = [d["name"] for d in raw["applications"][0]["deployments"]
                  if "logging_config" in d]
    assert overriding == ["Canary"]
