"""The deploy files, checked offline: Kubernetes manifests against the official schemas, configs
against Pinpoint's own settings, and the unit, image and proxy for what they promise."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from service.config import load_settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))


def documents():
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path.name, document


@pytest.mark.parametrize("name, document", list(documents()), ids=lambda v: v if isinstance(v, str) else "")
def test_manifests_follow_the_kubernetes_schema(name, document):
    kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


def test_every_kind_the_issue_asks_for_is_there():
    kinds = {document["kind"] for _, document in documents()}
    assert kinds >= {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PersistentVolumeClaim"}


def test_probes_use_health_and_readiness_on_the_container_port():
    deployment = next(d for _, d in documents() if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {p["containerPort"] for p in container["ports"]} == {8080, 8500}  # HTTP, gRPC
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/images", "/data/uploads", "/etc/pinpoint"} <= mounts
    assert container["resources"]["limits"]["memory"]


def test_the_configmap_and_example_config_are_valid_pinpoint_settings(tmp_path):
    configmap = next(d for _, d in documents() if d["kind"] == "ConfigMap")
    config = tmp_path / "pinpoint.toml"
    config.write_text(configmap["data"]["pinpoint.toml"])
    settings = load_settings(config, environ={})
    assert settings.host == "0.0.0.0" and str(settings.image_root) == "/images"
    assert load_settings(DEPLOY / "pinpoint.toml", environ={}).trusted_proxies == ("127.0.0.1/32",)


def test_the_systemd_unit_runs_serve_with_hardening():
    unit = (DEPLOY / "pinpoint.service").read_text()
    assert re.search(r"^ExecStart=\S+/pinpoint serve ", unit, re.M)
    for key in ("Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                "CapabilityBoundingSet=", "ExecReload=/bin/kill -HUP $MAINPID", "User=pinpoint"):
        assert key in unit, key


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert "pip install -e ." in dockerfile  # the same install as `make serve`


def test_nginx_body_limit_matches_the_service():
    conf = (DEPLOY / "nginx.conf").read_text()
    limit_mb = int(re.search(r"client_max_body_size (\d+)m;", conf).group(1))
    assert limit_mb * 1024 * 1024 == load_settings(environ={}).max_body_bytes
    assert "proxy_request_buffering on;" in conf and "X-Forwarded-For" in conf


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (.ci/run installs it)")
def test_nginx_accepts_the_example(tmp_path):
    wrapper = tmp_path / "nginx.conf"
    wrapper.write_text(f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
                       f"events {{}}\nhttp {{ access_log off; include {DEPLOY / 'nginx.conf'}; }}\n")
    done = subprocess.run(["nginx", "-t", "-c", str(wrapper), "-p", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


WRITTEN = ("upload_dir", "onnx_cache", "feedback_db", "pidfile", "log_file")   # what the server writes


def deploy_configs() -> dict[str, dict]:
    """Each deploy config as its TOML: the unit's, the image's, the ConfigMap's."""
    import tomllib

    configmap = next(d for _, d in documents() if d["kind"] == "ConfigMap")
    return {"pinpoint.toml": tomllib.loads((DEPLOY / "pinpoint.toml").read_text()),
            "container.toml": tomllib.loads((DEPLOY / "container.toml").read_text()),
            "configmap": tomllib.loads(configmap["data"]["pinpoint.toml"])}


@pytest.mark.parametrize("name", ["pinpoint.toml", "container.toml", "configmap"])
def test_every_deploy_config_names_absolute_paths_for_what_the_server_writes_and_reads(name):
    config = deploy_configs()[name]
    for key in (*WRITTEN, "models", "labels"):
        assert key in config and config[key].startswith("/"), f"{name}: {key} must be set, absolute"


def under(path: str, directories) -> bool:
    return any(Path(path).is_relative_to(directory) for directory in directories)


def test_what_the_server_writes_is_writable_where_each_deploy_file_runs_it():
    configs = deploy_configs()
    unit = (DEPLOY / "pinpoint.service").read_text()
    writable = re.search(r"^ReadWritePaths=(.+)$", unit, re.M).group(1).split()   # ProtectSystem=strict
    assert all(under(configs["pinpoint.toml"][key], writable) for key in WRITTEN), writable

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    owned = re.findall(r"chown -R pinpoint:pinpoint (\S+)", dockerfile)                  # USER pinpoint
    assert "COPY deploy/container.toml /etc/pinpoint/pinpoint.toml" in dockerfile
    assert '"--config", "/etc/pinpoint/pinpoint.toml"' in dockerfile
    assert all(under(configs["container.toml"][key], owned) for key in WRITTEN), owned

    deployment = next(d for _, d in documents() if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"]                       # only volumes
    mounts = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
    assert all(under(configs["configmap"][key], mounts) for key in WRITTEN), mounts
