"""Deployment manifests in `cluster/` parse, validate with Ray's own schemas, and embed configs/serve.yaml as is."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "cluster"


def _render_module() -> Any:
    spec = importlib.util.spec_from_file_location("render_rayservice", CLUSTER / "render_rayservice.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((CLUSTER / "rayservice.yaml").read_text()))


@pytest.fixture(scope="module")
def rayservice(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (rs,) = [d for d in docs if d.get("kind") == "RayService"]
    return rs


def _serve_yaml() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text())


def test_rayservice_is_a_fresh_render_of_serve_yaml() -> None:
    assert (CLUSTER / "rayservice.yaml").read_text() == _render_module().render(), \
        "cluster/rayservice.yaml is stale: run python cluster/render_rayservice.py"


def test_serve_config_v2_embeds_the_same_applications(rayservice: dict[str, Any]) -> None:
    from ray.serve.schema import ServeDeploySchema

    assert rayservice["apiVersion"] == "ray.io/v1"
    embedded = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    local = _serve_yaml()
    for cfg in (embedded, local):  # what `serve deploy` validates first ...
        ServeDeploySchema.model_validate(cfg)
    # ... it lets unknown deployment keys through, so also apply the overrides as `serve run` does
    import importlib

    from aimds_ray.distributed.serve_app import AimdsIngress

    for app in embedded["applications"]:
        mod, _, attr = app["import_path"].partition(":")
        builder = getattr(importlib.import_module(mod), attr)
        for d in app["deployments"]:
            assert d["name"] == AimdsIngress.name
            AimdsIngress.options(**{k: v for k, v in d.items() if k != "name"})  # TypeError on unknown keys
        # the check `serve run` / `serve deploy` / KubeRay apply to a builder (one parameter, returns an Application)
        from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

        assert call_user_app_builder_with_args_if_necessary(builder, app["args"]) is not None
    # identical applications, except the HTTP/3 proxy's bind host (read by the sidecar only)
    want = copy.deepcopy(local["applications"])
    for app in want:
        if isinstance((app.get("args") or {}).get("quic"), dict):
            app["args"]["quic"]["host"] = "0.0.0.0"
    assert embedded["applications"] == want
    assert embedded["http_options"] == {**local["http_options"], "host": "0.0.0.0", "port": 8000}
    assert embedded["proxy_location"] == local["proxy_location"]
    dep = embedded["applications"][0]["deployments"][0]
    auto = dep["autoscaling_config"]
    assert 1 <= auto["min_replicas"] <= auto["max_replicas"]


def test_rayservice_cluster_spec(rayservice: dict[str, Any]) -> None:
    rc = rayservice["spec"]["rayClusterConfig"]
    assert rc["enableInTreeAutoscaling"] is True
    import ray

    assert rc["rayVersion"] == ray.__version__
    head = rc["headGroupSpec"]["template"]["spec"]["containers"]
    assert any(c["name"] == "ray-head" for c in head)
    for c in head:
        assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    (wg,) = rc["workerGroupSpecs"]
    assert 0 <= wg["minReplicas"] <= wg["replicas"] <= wg["maxReplicas"]
    for c in wg["template"]["spec"]["containers"]:
        assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    images = {c["image"] for c in head} | {c["image"] for c in wg["template"]["spec"]["containers"]}
    assert len(images) == 1  # head, sidecar and workers run the same build (same Ray, same aimds)


def test_h3_udp_service_targets_the_sidecar(docs: list[dict[str, Any]], rayservice: dict[str, Any]) -> None:
    (svc,) = [d for d in docs if d.get("kind") == "Service"]
    (port,) = svc["spec"]["ports"]
    assert port["protocol"] == "UDP" and port["port"] == 4433
    tmpl = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    assert svc["spec"]["selector"].items() <= tmpl["metadata"]["labels"].items()
    h3 = [c for c in tmpl["spec"]["containers"] if c["name"] == "aimds-h3"]
    assert h3 and {"containerPort": 4433, "protocol": "UDP", "name": "h3"} in h3[0]["ports"]
    assert "cluster/h3_proxy.py" in " ".join(h3[0]["command"])
    compile((CLUSTER / "h3_proxy.py").read_text(), "h3_proxy.py", "exec")


def test_launcher_yaml_validates_like_ray_up() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())
    validate_config(cfg)
    prepared = prepare_config(copy.deepcopy(cfg))  # what `ray up` does before launching anything
    validate_config(prepared)
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    workers = [v for k, v in types.items() if k != cfg["head_node_type"]]
    assert workers and all(0 <= w["min_workers"] <= w["max_workers"] <= cfg["max_workers"] for w in workers)
    setup = " ".join(cfg["setup_commands"])
    assert "pip install" in setup and "aimds-ray" in setup
    assert any("ray start --head" in c for c in cfg["head_start_ray_commands"])
    assert any("ray start --address" in c for c in cfg["worker_start_ray_commands"])
