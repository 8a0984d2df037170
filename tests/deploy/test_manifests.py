"""deploy/k8s, deploy/docker-compose.yml and deploy/Dockerfile agree with the code.

No cluster, no Docker, no network: the manifests are read as YAML and checked against
what the code defines. Every ``SEGSTREAM_*`` variable is a field of
``schemas.settings.Settings`` and each container's environment validates; every
``segstream`` command line is a command of ``consumers.cli``; the API's probes are
routes of its app; the ports, the image's user and its data directory match; the worker
gets more time to stop than the code takes; the kustomization lists exactly the
manifests of its directory.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import mode
import pytest
import typer
import yaml  # PyYAML, installed with uvicorn[standard]
from pydantic import ValidationError

from segstream.consumers.api import create_app
from segstream.consumers.cli import app as cli_app
from segstream.schemas.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
SECRETS_EXAMPLE = K8S / "secrets.env.example"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PROM = DEPLOY / "prometheus"

PREFIX = "SEGSTREAM_"
FAUST_ROLES = ("worker", "triggers")  # Faust apps: they write to SEGSTREAM_DATA_DIR


# ------------------------------------------------------------------ reading
def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.iterdir() if p.suffix in (".yaml", ".yml") and p != KUSTOMIZATION)


def k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in manifest_files() for doc in load_all(path)]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load(KUSTOMIZATION.read_text())


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines, as kustomize's secretGenerator ``envs`` reads them."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value
    return out


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, rest)`` with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def image_env() -> dict[str, str]:
    env = {}
    for word, rest in dockerfile_instructions():
        if word == "ENV":
            for pair in rest.split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def configmaps() -> dict[str, dict[str, str]]:
    return {
        doc["metadata"]["name"]: doc.get("data") or {}
        for _, doc in k8s_objects()
        if doc["kind"] == "ConfigMap"
    }


def secret_names() -> set[str]:
    generated = {g["name"] for g in kustomization().get("secretGenerator", [])}
    return generated | {
        doc["metadata"]["name"] for _, doc in k8s_objects() if doc["kind"] == "Secret"
    }


@dataclass(frozen=True)
class Container:
    """A segstream container of either deployment: its command line and environment."""

    where: str
    args: list[str]  # after the image's entrypoint, ``segstream``
    env: dict[str, str]  # effective SEGSTREAM_* values (image, ConfigMaps, own env)
    spec: dict[str, Any]
    pod: dict[str, Any]


def k8s_containers() -> Iterator[Container]:
    maps = configmaps()
    secrets = read_env_file(SECRETS_EXAMPLE)
    for path, doc in k8s_objects():
        if doc["kind"] not in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            continue
        pod = doc["spec"]["template"]["spec"]
        for c in pod["containers"]:
            if not c["image"].split(":")[0].endswith("segstream"):
                continue
            env = dict(image_env())
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    env.update(maps[source["configMapRef"]["name"]])
                if "secretRef" in source:
                    env.update(secrets)
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref.get("optional") and ref["key"] not in secrets:
                    continue  # commented out in the template: unset, as in a pod
                env[var["name"]] = secrets[ref["key"]] if ref else var["value"]
            command = c.get("command") or []
            assert command[:1] in ([], ["segstream"]), f"{path.name}: runs {command}"
            where = f"{path.relative_to(REPO)}: {doc['metadata']['name']}/{c['name']}"
            yield Container(where, command[1:] + c.get("args", []), env, c, pod)


def compose_containers() -> Iterator[Container]:
    for name, service in compose()["services"].items():
        if not service.get("image", "").startswith("segstream"):
            continue
        env = dict(image_env())
        env.update({k: str(v) for k, v in (service.get("environment") or {}).items() if v})
        command = service.get("command") or []
        yield Container(f"{COMPOSE.relative_to(REPO)}: {name}", command, env, service, service)


def containers() -> list[Container]:
    return [*k8s_containers(), *compose_containers()]


def role(name: str) -> list[Container]:
    found = [c for c in containers() if c.args[:1] == [name]]
    assert found, f"no container runs `segstream {name}`"
    return found


def k8s_role(name: str) -> Container:
    (found,) = [c for c in k8s_containers() if c.args[:1] == [name]]
    return found


def setting(env: dict[str, str], field: str) -> Any:
    """The value a container's Settings would have for ``field``."""
    raw = env.get(PREFIX + field.upper())
    return Settings.model_fields[field].default if raw is None else raw


def variables_named() -> Iterator[tuple[str, str]]:
    """Every SEGSTREAM_* name the deployment files set, with where."""
    for key in image_env():
        yield str(DOCKERFILE.relative_to(REPO)), key
    for key in read_env_file(SECRETS_EXAMPLE):
        yield str(SECRETS_EXAMPLE.relative_to(REPO)), key
    for path, doc in k8s_objects():
        where = str(path.relative_to(REPO))
        if doc["kind"] in ("ConfigMap", "Secret"):
            for section in ("data", "stringData"):
                yield from ((where, key) for key in doc.get(section) or {})
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in pod.get("containers", []):
            for var in c.get("env", []):
                yield where, var["name"]
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    yield where, ref["key"]
    for name, service in compose()["services"].items():
        for key in service.get("environment") or {}:
            yield f"{COMPOSE.relative_to(REPO)}: {name}", key


# -------------------------------------------------------------------- tests
def test_every_segstream_variable_is_a_setting() -> None:
    fields = set(Settings.model_fields)
    named = [(w, n) for w, n in variables_named() if n.startswith(PREFIX)]
    assert named
    unknown = [
        f"{where}: {name}"
        for where, name in named
        # SEGSTREAM_CLUSTERER__N_CLUSTERS sets a nested field (env_nested_delimiter "__")
        if name.removeprefix(PREFIX).lower().split("__")[0] not in fields
    ]
    assert not unknown, "not fields of schemas.settings.Settings:\n" + "\n".join(unknown)


@pytest.mark.parametrize("c", containers(), ids=lambda c: c.where)
def test_each_containers_environment_is_valid_settings(c: Container, monkeypatch) -> None:
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)
    for name, value in c.env.items():
        monkeypatch.setenv(name, value)
    try:
        Settings()
    except ValidationError as exc:
        pytest.fail(f"{c.where}: {exc}", pytrace=False)


@pytest.mark.parametrize("name", FAUST_ROLES)
def test_the_client_certificate_paths_are_files_of_the_mounted_secret(name, monkeypatch) -> None:
    """configmap.yaml's commented mutual-TLS paths lie in the optional Secret the Kafka pods
    mount, and with them uncommented the pod's settings still validate."""
    text = (K8S / "configmap.yaml").read_text()
    paths = dict(re.findall(r"^  # (SEGSTREAM_KAFKA_SSL_(?:CERT|KEY)FILE): (\S+)$", text, re.M))
    assert set(paths) == {"SEGSTREAM_KAFKA_SSL_CERTFILE", "SEGSTREAM_KAFKA_SSL_KEYFILE"}
    c = k8s_role(name)
    (volume,) = [
        v
        for v in c.pod["volumes"]
        if v.get("secret", {}).get("secretName") == "segstream-kafka-client"
    ]
    assert volume["secret"]["optional"] is True, "mutual TLS is optional"
    (mount,) = [m for m in c.spec["volumeMounts"] if m["name"] == volume["name"]]
    assert all(PurePosixPath(p).parent == PurePosixPath(mount["mountPath"]) for p in paths.values())
    for var in list(os.environ):
        if var.startswith(PREFIX):
            monkeypatch.delenv(var)
    for var, value in {**c.env, **paths}.items():
        monkeypatch.setenv(var, value)
    assert Settings().kafka_ssl_keyfile == paths["SEGSTREAM_KAFKA_SSL_KEYFILE"]


def _resolve(group: Any, args: list[str], where: str) -> Any:
    """The command ``args`` runs, checking each name and option on the way. (Typer's
    commands are click commands, from its own copy of click in recent versions.)"""
    name, rest = args[0], args[1:]
    assert name in group.commands, f"{where}: `segstream {name}` is not a command"
    command = group.commands[name]
    if hasattr(command, "commands"):  # a group: `segstream keys create`
        assert rest, f"{where}: `segstream {name}` needs a subcommand"
        return _resolve(command, rest, f"{where} {name}")
    options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    for arg in rest:
        if arg.startswith("-"):
            assert arg.split("=")[0] in options, f"{where}: {name} has no option {arg}"
    return command


def test_container_commands_are_cli_commands() -> None:
    root = typer.main.get_command(cli_app)
    assert "worker" in root.commands  # type: ignore[attr-defined]
    for c in containers():
        assert c.args, f"{c.where}: no segstream command (the image would print --help)"
        _resolve(root, c.args, c.where)


def test_the_image_runs_the_segstream_console_script() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["segstream"] == "segstream.consumers.cli:app"
    (entrypoint,) = [yaml.safe_load(r) for w, r in dockerfile_instructions() if w == "ENTRYPOINT"]
    assert entrypoint == ["segstream"]


def test_the_build_context_and_image_hold_every_package() -> None:
    """A new top-level package must reach the image: .dockerignore lets it in and the
    Dockerfile copies it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = set(project["tool"]["setuptools"]["package-dir"].values())
    ignore = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    assert ignore[ignore.index("*") + 1 :], ".dockerignore must exclude everything first"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert packages | {"pyproject.toml", "README.md"} <= allowed
    copied = {
        rest.split()[0].rstrip("/") for w, rest in dockerfile_instructions() if w == "COPY"
    } | {name for w, rest in dockerfile_instructions() if w == "COPY" for name in rest.split()}
    assert packages <= copied, f"the Dockerfile does not COPY {packages - copied}"


def test_kustomization_lists_every_manifest_and_only_those() -> None:
    listed = kustomization()["resources"]
    assert len(listed) == len(set(listed)), "a manifest is listed twice"
    present = {p.name for p in manifest_files()}
    assert set(listed) == present, (
        f"in the directory, not listed: {sorted(present - set(listed))}; "
        f"listed, not in the directory: {sorted(set(listed) - present)}"
    )


def test_secret_and_configmap_references_resolve() -> None:
    generator = kustomization()["secretGenerator"]
    assert [e for g in generator for e in g["envs"]] == ["secrets.env"]
    assert (K8S / ".gitignore").read_text().split() == ["secrets.env"], "keep it out of git"
    template = read_env_file(SECRETS_EXAMPLE)
    assert all("CHANGE-ME" in v for v in template.values()), "placeholders only"
    commented = {  # optional keys: in the template as `# KEY=CHANGE-ME`, documented
        m.group(1) for m in re.finditer(r"^# (SEGSTREAM_\w+)=", SECRETS_EXAMPLE.read_text(), re.M)
    }
    maps, secrets = configmaps(), secret_names()
    for path, doc in k8s_objects():
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in pod.get("containers", []):
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in maps, path.name
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, path.name
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in secrets, f"{path.name}: {ref}"
                    known = template.keys() | (commented if ref.get("optional") else set())
                    assert ref["key"] in known, f"{path.name}: {ref['key']} not in template"
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                cm = volume["configMap"]
                assert cm["name"] in maps or cm.get("optional"), f"{path.name}: {cm}"
            if "secret" in volume:
                secret = volume["secret"]
                assert secret["secretName"] in secrets or secret.get("optional"), path.name


def api_routes() -> set[str]:
    return {route.path for route in create_app(Settings()).routes}  # type: ignore[attr-defined]


def test_api_probes_and_scrape_path_are_routes_of_the_app() -> None:
    routes = api_routes()
    api = k8s_role("api")
    ports = {p["name"]: p["containerPort"] for p in api.spec["ports"]}
    probes = [api.spec[k]["httpGet"] for k in ("livenessProbe", "readinessProbe")]
    for probe in probes:
        assert probe["path"] in routes, f"{api.where}: no route {probe['path']}"
        assert ports.get(probe["port"], probe["port"]) == int(setting(api.env, "api_port"))
    annotations = k8s_pod_annotations("api")
    assert annotations["prometheus.io/path"] in routes
    assert int(annotations["prometheus.io/port"]) == int(setting(api.env, "api_port"))
    for c in role("api"):
        if c.where.startswith(str(COMPOSE.relative_to(REPO))):
            url = c.spec["healthcheck"]["test"][-1]
            path = re.search(r"http://127\.0\.0\.1:(\d+)(/[a-z]+)", url)
            assert path, url
            assert path.group(2) in routes
            assert int(path.group(1)) == int(setting(c.env, "api_port"))


def k8s_pod_annotations(component: str) -> dict[str, str]:
    for _, doc in k8s_objects():
        template = doc.get("spec", {}).get("template", {})
        labels = template.get("metadata", {}).get("labels", {})
        if labels.get("app.kubernetes.io/component") == component:
            return dict(template["metadata"].get("annotations", {}))
    raise AssertionError(f"no pod template with component {component}")


@pytest.mark.parametrize(
    ("name", "port_field"), [("worker", "metrics_port"), ("triggers", "triggers_metrics_port")]
)
def test_metrics_port_is_the_setting_everywhere(name: str, port_field: str) -> None:
    """The containerPort Prometheus discovers (named "metrics", as prometheus.yml's
    Kubernetes block expects), the annotation, compose's DNS discovery and healthcheck,
    for the worker and the trigger relay (job segstream-<role>)."""
    k8s = k8s_role(name)
    port = int(setting(k8s.env, port_field))
    assert port == Settings.model_fields[port_field].default, "the manifests use the default"
    all_interfaces = "0.0.0.0"  # noqa: S104 - what a container must listen on to be scraped
    assert setting(k8s.env, "metrics_host") == all_interfaces
    ports = {p["name"]: p["containerPort"] for p in k8s.spec["ports"]}
    assert ports == {"metrics": port}
    assert int(k8s_pod_annotations(name)["prometheus.io/port"]) == port
    prom = yaml.safe_load((PROM / "prometheus-compose.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == f"segstream-{name}"]
    (in_compose,) = [c for c in compose_containers() if c.args[:1] == [name]]
    assert job["dns_sd_configs"][0]["names"] == [name]
    assert job["dns_sd_configs"][0]["port"] == int(setting(in_compose.env, port_field))
    assert str(job["dns_sd_configs"][0]["port"]) in str(in_compose.spec["healthcheck"])


def stop_bound() -> float:
    """How long a graceful stop may take by the code's own timeouts: stop/shutdown
    settings (none today) and mode's service stop, which waits up to its
    shutdown_timeout."""
    own = [
        float(info.default)
        for name, info in Settings.model_fields.items()
        if ("stop" in name or "shutdown" in name) and isinstance(info.default, int | float)
    ]
    return max([mode.Service.shutdown_timeout, *own])


def seconds(duration: str | int) -> float:
    """Compose's ``90s``, ``1m30s``; Kubernetes' integer."""
    if isinstance(duration, int):
        return duration
    units = {"h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", duration)
    assert parts and "".join(a + u for a, u in parts) == duration, duration
    return sum(float(a) * (0.001 if u == "ms" else units[u]) for a, u in parts)


@pytest.mark.parametrize("name", FAUST_ROLES)
def test_stop_grace_period_exceeds_the_graceful_stop(name: str) -> None:
    bound = stop_bound()
    for c in role(name):
        grace = c.pod.get("terminationGracePeriodSeconds", c.pod.get("stop_grace_period"))
        assert grace is not None, f"{c.where}: the default grace period (30 s k8s, 10 s compose)"
        assert seconds(grace) > bound, f"{c.where}: {grace} ≤ {bound} s"
    restart = [c.pod.get("restartPolicy", c.pod.get("restart")) for c in role(name)]
    assert set(restart) <= {"Always", "unless-stopped", "always"}, "exit 70 must restart it"


def test_worker_replicas_do_not_exceed_partitions() -> None:
    partitions = int(setting(k8s_role("worker").env, "partitions"))
    checked = []
    for _, doc in k8s_objects():
        labels = doc.get("metadata", {}).get("labels", {})
        component = labels.get("app.kubernetes.io/component")
        if doc["kind"] == "Deployment" and component in ("worker", "triggers"):
            assert 1 <= doc["spec"]["replicas"] <= partitions, doc["metadata"]["name"]
            checked.append(component)
    assert sorted(checked) == ["triggers", "worker"]


def test_worker_pdb_selects_the_worker_pods() -> None:
    (pdb,) = [doc for _, doc in k8s_objects() if doc["kind"] == "PodDisruptionBudget"]
    (deployment,) = [
        doc
        for _, doc in k8s_objects()
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "segstream-worker"
    ]
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert pdb["spec"]["maxUnavailable"] == 1


def test_containers_run_as_the_images_user_and_can_write_their_data_dir() -> None:
    (user,) = [rest for w, rest in dockerfile_instructions() if w == "USER"]
    for c in k8s_containers():
        assert c.pod["securityContext"]["runAsUser"] == int(user), c.where
        assert c.pod["securityContext"]["runAsNonRoot"] is True, c.where
        if c.spec["securityContext"].get("readOnlyRootFilesystem") and c.args[0] in FAUST_ROLES:
            data_dir = PurePosixPath(setting(c.env, "data_dir"))
            mounts = [PurePosixPath(m["mountPath"]) for m in c.spec["volumeMounts"]]
            assert any(data_dir.is_relative_to(m) for m in mounts), f"{c.where}: {data_dir}"


def test_compose_keeps_the_servers_only_default() -> None:
    """README and deploy/local/README run `docker compose ... up -d --wait` for Kafka and
    Redis alone, on the ports of deploy/local; the rest of the stack is a profile."""
    services = compose()["services"]
    default = {name for name, s in services.items() if not s.get("profiles")}
    assert default == {"kafka", "redis"}
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert "127.0.0.1:9092:9092" in services["kafka"]["ports"]
    assert "127.0.0.1:6379:6379" in services["redis"]["ports"]
    assert "ports" not in services["worker"], "a published port breaks --scale worker=N"


def test_compose_prometheus_scrapes_the_jobs_the_rules_select() -> None:
    host = yaml.safe_load((PROM / "prometheus.yml").read_text())
    config = PROM / "prometheus-compose.yml"
    inside = yaml.safe_load(config.read_text())
    assert {j["job_name"] for j in inside["scrape_configs"]} == {
        j["job_name"] for j in host["scrape_configs"]
    }
    mounts = {}
    for volume in compose()["services"]["prometheus"]["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            assert (COMPOSE.parent / source).resolve().exists(), source
            mounts[PurePosixPath(target)] = (COMPOSE.parent / source).resolve()
    config_path = PurePosixPath("/etc/prometheus/prometheus.yml")
    assert mounts[config_path] == config.resolve()
    for rules in inside["rule_files"]:
        assert mounts[config_path.parent / rules] == (PROM / "rules.yml").resolve()
