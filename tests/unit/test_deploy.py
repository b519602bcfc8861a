"""The deployment files, checked offline: Dockerfiles (hadolint), Kubernetes manifests
(kubernetes-validate's schemas, strict, plus the values that must agree across files),
the systemd unit (systemd-analyze verify) and the release workflow (its schema)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from flexilib.config import load_config

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
UNIT = REPO / "deploy" / "systemd" / "flexilib.service"
RELEASE = REPO / ".github" / "workflows" / "release.yml"
VENV_BIN = Path(sys.executable).parent
# The oldest release that is still common in managed clusters, and the newest schema known.
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())


def manifests() -> dict[str, dict]:
    """kind -> the resource, for every file kustomization.yaml lists."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    resources = [
        yaml.safe_load((KUBERNETES / name).read_text()) for name in kustomization["resources"]
    ]
    return {resource["kind"]: resource for resource in resources}


def container() -> dict:
    return manifests()["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def env(name: str) -> str:
    return next(item["value"] for item in container()["env"] if item["name"] == name)


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "examples/container/Dockerfile"])
def test_dockerfile_is_hadolint_clean(dockerfile):
    done = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--no-color", dockerfile],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerignore_keeps_build_output_out_of_the_context():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "/lib", "/build", "/dist", "**/*.so"} <= set(ignored)


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(listed) == sorted(present)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_match_the_kubernetes_schemas(version):
    kinds = manifests()
    assert set(kinds) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for resource in kinds.values():
        kubernetes_validate.validate(resource, version, strict=True)


def test_a_schema_violation_is_caught():
    """The validator rejects a wrong field, so the test above can fail."""
    broken = manifests()["Deployment"]
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSecond"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_termination_grace_outlasts_drain_delay_plus_stop_timeout():
    spec = manifests()["Deployment"]["spec"]["template"]["spec"]
    grace = next(
        float(a.split("=", 1)[1]) for a in container()["args"] if a.startswith("--grace-period=")
    )
    assert spec["terminationGracePeriodSeconds"] > float(env("SERVER_DRAIN_DELAY")) + grace


def test_probes_ask_the_admin_listener_on_all_interfaces():
    ports = {port["name"]: port["containerPort"] for port in container()["ports"]}
    host, _, port = env("SERVER_ADMIN").rpartition(":")
    assert host == "0.0.0.0" and int(port) == ports["admin"]
    assert int(env("PORT")) == ports["http"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container()[probe]["httpGet"] == {"path": path, "port": "admin"}


def test_pod_runs_as_the_image_user_with_a_read_only_root():
    uid = re.search(r"^ARG UID=(\d+)$", (REPO / "Dockerfile").read_text(), re.M).group(1)
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == int(
        uid
    )
    assert container()["securityContext"]["readOnlyRootFilesystem"]
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]  # private copies of native libraries


def test_labels_select_the_pods():
    kinds = manifests()
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for selector in (
        kinds["Deployment"]["spec"]["selector"]["matchLabels"],
        kinds["Service"]["spec"]["selector"],
        kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    target = kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (
        "Deployment",
        kinds["Deployment"]["metadata"]["name"],
    )


def test_configmap_is_a_valid_config_mounted_where_the_server_reads_it(tmp_path):
    """proxy.ini parses, names handlers by absolute paths (a ConfigMap file is a symlink
    into a timestamped folder: relative paths would resolve there), and is watched."""
    configmap = manifests()["ConfigMap"]
    config = tmp_path / "proxy.ini"
    config.write_text(configmap["data"]["proxy.ini"])
    rules = load_config(config)
    assert rules and all(Path(rule.spec.path).is_absolute() for rule in rules)
    assert all(str(tmp_path) not in rule.spec.path for rule in rules)
    flag = next(a for a in container()["args"] if a.startswith("--config="))
    mounts = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v.get("configMap"))
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert flag == f"--config={mounts[volume['name']]}/proxy.ini"
    assert env("SERVER_WATCH_CONFIG") == "1"


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (Debian package systemd; .ci/run installs it)",
)
def test_systemd_unit_verifies(tmp_path):
    """systemd-analyze verify: every directive known, every command executable. The unit
    names /opt/flexilib/bin/flexilib; the copy checked here names this venv's instead."""
    text = UNIT.read_text()
    assert text.count("/opt/flexilib/bin/flexilib ") == 1
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("/opt/flexilib/bin/flexilib ", f"{VENV_BIN / 'flexilib'} "))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    for line in ("Type=exec", "KillSignal=SIGTERM", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in text.splitlines()


def test_release_workflow_matches_the_workflow_schema():
    done = subprocess.run(
        [
            str(VENV_BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            RELEASE,
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_release_signs_every_artifact_with_the_jobs_own_identity():
    workflow = yaml.safe_load(RELEASE.read_text())
    assert workflow["permissions"] == {}  # nothing by default; each job asks
    dist = workflow["jobs"]["dist"]
    assert dist["permissions"]["id-token"] == "write"
    runs = "\n".join(step.get("run", "") for step in dist["steps"])
    assert "make dist" in runs
    assert "sigstore sign dist/*.tar.gz dist/*.whl dist/SHA256SUMS" in runs
    image = workflow["jobs"]["image"]
    assert image["permissions"]["id-token"] == "write"
    assert any("cosign sign" in step.get("run", "") for step in image["steps"])
