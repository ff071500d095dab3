"""The deployment files: docker-compose.yml, the Dockerfile and deploy/kubernetes/.

Nothing here needs a Docker engine or a cluster. The files are parsed and held
to the invariants whose violation only shows at deploy time, usually in
production: a misspelt HYGIENE_* name (the settings ignore unknown variables,
so a typo silently falls back to a default), a secret written into a file, a
worker without durable RocksDB state, probes on the wrong path, workers that
start before their topics exist.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import typing
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any, cast

import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from processor.rules.config import DEFAULT_RULES_PATH, parse_rules
from processor.settings import Settings, Topics

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "kubernetes"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

NAMESPACE = "revops-hygiene"
SECRET_NAME = "hygiene-secrets"
EXAMPLE_SECRET_FILE = "secret.example.yaml"
PLACEHOLDER = "REPLACE_ME"

# Read by the Slack notifier (`hygiene notify slack`), which has no settings
# model here yet. Kept explicit on purpose: add a name when the notifier reads
# it, never a wildcard.
NOTIFIER_ENV: frozenset[str] = frozenset({"HYGIENE_SLACK_WEBHOOK_URL"})
# ... and of those, the ones that are credentials (a webhook URL is one).
NOTIFIER_SECRETS: frozenset[str] = frozenset({"HYGIENE_SLACK_WEBHOOK_URL"})

HYGIENE_NAME = re.compile(r"\bHYGIENE_[A-Z0-9_]*[A-Z0-9]")
SECRET_LIKE_NAME = re.compile(
    r"PASSWORD|PASSWD|TOKEN|SECRET|WEBHOOK|CREDENTIAL|API_KEY|PRIVATE_KEY|(?:^|_)AUTH(?:$|_)"
)
# scheme://user:password@host, unless the password is a ${...} reference.
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/@:]*:(?!\$\{)[^\s/@]+@", re.IGNORECASE)
# A compose value that takes a secret from the environment: ${VAR}, ${VAR:?msg}
# (required), or ${VAR:-} (empty); test_compose_secrets_come_from_the_environment
# refuses any default value.
COMPOSE_SECRET_VALUE = re.compile(
    r"^\$\{(?P<var>[A-Z_][A-Z0-9_]*)(?:(?P<op>:\?|\?|:-|-)(?P<arg>[^}]*))?\}$"
)
COMPOSE_VARIABLE = re.compile(
    r"\$(?:\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?+])[^}]*)?\}|[A-Za-z_][A-Za-z0-9_]*)"
)

Doc = dict[str, Any]
WORKLOAD_KINDS = frozenset({"StatefulSet", "Deployment", "DaemonSet", "ReplicaSet", "Job"})


# ---- helpers -------------------------------------------------------------------
def _mapping(value: object, what: str) -> dict[str, Any]:
    assert isinstance(value, dict), f"{what}: expected a mapping, got {type(value).__name__}"
    return cast(dict[str, Any], value)


def _list(value: object, what: str) -> list[Any]:
    assert isinstance(value, list), f"{what}: expected a list, got {type(value).__name__}"
    return value


def _strings(node: object) -> Iterator[str]:
    """Every string in a parsed YAML tree, keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _mentions(annotation: object, target: type) -> bool:
    if annotation is target:
        return True
    return any(_mentions(arg, target) for arg in typing.get_args(annotation))


def _env_names(model: type[BaseSettings]) -> dict[str, str]:
    """Environment variable name -> field name, as pydantic-settings reads them."""
    prefix = model.model_config.get("env_prefix") or ""
    names: dict[str, str] = {}
    for field_name, field in model.model_fields.items():
        # An alias would replace prefix + name; none is used, keep it that way
        # or teach this function about it.
        assert field.alias is None and field.validation_alias is None, (
            f"{model.__name__}.{field_name} has an alias: update _env_names"
        )
        names[f"{prefix}{field_name}".upper()] = field_name
    return names


SETTINGS_ENV = _env_names(Settings)
TOPICS_ENV = _env_names(Topics)
ALLOWED_ENV: frozenset[str] = frozenset(SETTINGS_ENV) | frozenset(TOPICS_ENV) | NOTIFIER_ENV
SECRET_ENV: frozenset[str] = (
    frozenset(
        env
        for env, field in SETTINGS_ENV.items()
        if _mentions(Settings.model_fields[field].annotation, SecretStr)
    )
    | NOTIFIER_SECRETS
)


def _unknown_hygiene_names(strings: Iterable[str]) -> set[str]:
    return {m for s in strings for m in HYGIENE_NAME.findall(s)} - ALLOWED_ENV


def _is_secret_name(name: str) -> bool:
    return name in SECRET_ENV or bool(SECRET_LIKE_NAME.search(name))


# ---- loading -------------------------------------------------------------------
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys: YAML forbids them, PyYAML (and so a
    reviewer reading the parsed result) silently keeps the last one. Keys that
    `<<` merges in may still be overridden."""


def _construct_strict_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_strict_mapping
)


def _load_all(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=_StrictLoader))


def _k8s_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.rglob("*") if p.suffix in {".yaml", ".yml"})


@cache
def _k8s_docs() -> tuple[tuple[str, Doc], ...]:
    docs: list[tuple[str, Doc]] = []
    for path in _k8s_files():
        for doc in _load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                docs.append((path.relative_to(K8S_DIR).as_posix(), _mapping(doc, path.name)))
    return tuple(docs)


def _k8s(kind: str, *, include_example: bool = False) -> list[Doc]:
    return [
        doc
        for name, doc in _k8s_docs()
        if doc.get("kind") == kind and (include_example or name != EXAMPLE_SECRET_FILE)
    ]


def _one(kind: str) -> Doc:
    found = _k8s(kind)
    assert len(found) == 1, f"expected exactly one {kind}, found {len(found)}"
    return found[0]


def _by_name(kind: str, name: str) -> Doc:
    found = [d for d in _k8s(kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind} named {name!r}, found {len(found)}"
    return found[0]


@cache
def _compose() -> Doc:
    (doc,) = _load_all(COMPOSE_FILE.read_text(encoding="utf-8"))
    return _mapping(doc, COMPOSE_FILE.name)


def _services() -> dict[str, Doc]:
    return {
        name: _mapping(service, f"service {name}")
        for name, service in _mapping(_compose()["services"], "services").items()
    }


def _pod_spec(doc: Doc) -> Doc | None:
    kind = doc.get("kind")
    if kind in WORKLOAD_KINDS:
        return _mapping(doc["spec"]["template"]["spec"], f"{kind} pod spec")
    if kind == "CronJob":
        return _mapping(doc["spec"]["jobTemplate"]["spec"]["template"]["spec"], "pod spec")
    if kind == "Pod":
        return _mapping(doc["spec"], "pod spec")
    return None


def _containers(pod: Doc) -> list[Doc]:
    return [
        _mapping(c, "container")
        for c in [*pod.get("containers", []), *pod.get("initContainers", [])]
    ]


def _pod_specs() -> list[tuple[str, Doc]]:
    specs = []
    for _, doc in _k8s_docs():
        pod = _pod_spec(doc)
        if pod is not None:
            specs.append((f"{doc['kind']}/{doc['metadata']['name']}", pod))
    return specs


def _container_env(container: Doc) -> dict[str, str]:
    """The literal environment a container sees: its ConfigMaps, then its env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            data = _by_name("ConfigMap", source["configMapRef"]["name"]).get("data", {})
            env.update({str(k): str(v) for k, v in data.items()})
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
    return env


def _compose_env(service: Doc) -> dict[str, str | None]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        pairs = (str(item).partition("=") for item in raw)
        return {key: (value if sep else None) for key, sep, value in pairs}
    return {str(k): None if v is None else str(v) for k, v in _mapping(raw, "environment").items()}


def _seconds(duration: object) -> float:
    total = 0.0
    text = str(duration)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"unparseable duration {text!r}"
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    for number, unit in parts:
        total += float(number) * scale[unit]
    return total


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile()
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    return instructions[last_from:]


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in _final_stage():
        if keyword == "ENV":
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"ENV {args!r}: use the KEY=value form"
                env[key] = value
    return env


def _web_port_default() -> int:
    default = Settings.model_fields["web_port"].default
    assert isinstance(default, int)
    return default


# ---- every file parses -----------------------------------------------------------
def test_the_deployment_files_exist() -> None:
    names = {p.relative_to(K8S_DIR).as_posix() for p in _k8s_files()}
    assert {
        "namespace.yaml",
        "configmap.yaml",
        EXAMPLE_SECRET_FILE,
        "statefulset.yaml",
        "job-topics.yaml",
        "kustomization.yaml",
    } <= names
    assert (K8S_DIR / "README.md").is_file()
    assert COMPOSE_FILE.is_file() and DOCKERFILE.is_file() and DOCKERIGNORE.is_file()


@pytest.mark.parametrize("name", [p.relative_to(K8S_DIR).as_posix() for p in _k8s_files()])
def test_every_kubernetes_document_is_well_formed(name: str) -> None:
    docs = [doc for file, doc in _k8s_docs() if file == name]
    assert docs, f"{name} holds no document"
    for doc in docs:
        assert isinstance(doc.get("apiVersion"), str) and isinstance(doc.get("kind"), str)
        if doc["kind"] == "Kustomization":
            continue
        metadata = _mapping(doc.get("metadata"), f"{name}: metadata")
        assert metadata.get("name"), f"{name}: {doc['kind']} without a name"
        if doc["kind"] != "Namespace":
            assert metadata.get("namespace") == NAMESPACE, (
                f"{name}: {doc['kind']}/{metadata['name']} not in namespace {NAMESPACE}"
            )


def test_the_loader_rejects_duplicate_keys_but_allows_merge_overrides() -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'a'"):
        _load_all("a: 1\nb: 2\na: 3\n")
    (doc,) = _load_all("base: &base {a: 1, b: 2}\nderived: {<<: *base, b: 3}\n")
    assert doc["derived"] == {"a": 1, "b": 3}


def test_compose_file_parses_with_services() -> None:
    assert set(_services()) >= {
        "kafka", "redis", "topic-init", "worker-1", "worker-2", "simulator", "notifier"
    }


# ---- HYGIENE_* names are real settings --------------------------------------------
def test_allowed_names_are_the_ones_pydantic_settings_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert {"HYGIENE_KAFKA_BOOTSTRAP", "HYGIENE_STORE", "HYGIENE_DATA_DIR",
            "HYGIENE_API_TOKEN", "HYGIENE_TOPIC_INPUTS", "HYGIENE_TOPIC_DEAD_LETTER",
            "HYGIENE_SLACK_WEBHOOK_URL"} <= ALLOWED_ENV
    assert "HYGIENE_TOPICS" not in ALLOWED_ENV and "HYGIENE_INPUTS" not in ALLOWED_ENV
    # The derivation matches what the settings really read.
    monkeypatch.setenv("HYGIENE_APP_ID", "probe-app")
    monkeypatch.setenv("HYGIENE_TOPIC_DEAD_LETTER", "probe.dlq")
    assert Settings().app_id == "probe-app"
    assert Topics().dead_letter == "probe.dlq"


def test_secret_settings_are_secret_strings() -> None:
    assert {"HYGIENE_KAFKA_SASL_PASSWORD", "HYGIENE_REDIS_PASSWORD", "HYGIENE_API_TOKEN"} <= (
        SECRET_ENV
    )
    # A setting whose name says "credential" must be held as a SecretStr.
    named_like_secrets = {n for n in SETTINGS_ENV if SECRET_LIKE_NAME.search(n)}
    assert named_like_secrets <= SECRET_ENV


def test_the_name_check_catches_a_typo() -> None:
    misspelt = {"env": [{"name": "HYGIENE_KAFKA_BOOTSTRAPS", "value": "x"}],
                "command": ["echo ${HYGIENE_REDIS_PASWORD:-x}"]}
    assert _unknown_hygiene_names(_strings(misspelt)) == {
        "HYGIENE_KAFKA_BOOTSTRAPS", "HYGIENE_REDIS_PASWORD"
    }
    assert _unknown_hygiene_names(["HYGIENE_TOPIC_ALERTS=x", "$${HYGIENE_WEB_PORT}"]) == set()


@pytest.mark.parametrize("name", [p.relative_to(K8S_DIR).as_posix() for p in _k8s_files()])
def test_kubernetes_hygiene_names_are_real_settings(name: str) -> None:
    strings = [s for file, doc in _k8s_docs() if file == name for s in _strings(doc)]
    assert _unknown_hygiene_names(strings) == set()


def test_compose_hygiene_names_are_real_settings() -> None:
    strings = list(_strings(_compose()))
    found = {m for s in strings for m in HYGIENE_NAME.findall(s)}
    assert {"HYGIENE_KAFKA_BOOTSTRAP", "HYGIENE_STORE", "HYGIENE_API_TOKEN"} <= found
    assert _unknown_hygiene_names(strings) == set()


def test_dockerfile_hygiene_names_are_real_settings() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "HYGIENE_DATA_DIR" in HYGIENE_NAME.findall(text)
    assert _unknown_hygiene_names([text]) == set()


def test_configmap_env_keys_are_all_settings() -> None:
    data = _by_name("ConfigMap", "hygiene-env")["data"]
    assert set(data) <= ALLOWED_ENV
    assert "HYGIENE_KAFKA_BOOTSTRAP" in data and "HYGIENE_RULES_FILE" in data


# ---- no secret in a file -------------------------------------------------------
def test_no_secret_object_outside_the_example() -> None:
    for name, doc in _k8s_docs():
        if name != EXAMPLE_SECRET_FILE:
            assert doc.get("kind") != "Secret", f"{name} holds a Secret: secrets are not committed"
    kustomization = _one("Kustomization")
    assert EXAMPLE_SECRET_FILE not in kustomization.get("resources", [])
    assert "secretGenerator" not in kustomization


@pytest.mark.parametrize("where", ["kubernetes", "compose"])
def test_no_url_embeds_a_password(where: str) -> None:
    if where == "compose":
        strings = list(_strings(_compose()))
    else:
        strings = [s for n, d in _k8s_docs() if n != EXAMPLE_SECRET_FILE for s in _strings(d)]
    assert [s for s in strings if URL_WITH_PASSWORD.search(s)] == []
    assert URL_WITH_PASSWORD.search("redis://:hunter2@redis:6379/0")
    assert not URL_WITH_PASSWORD.search("redis://redis:6379/0")


def test_kubernetes_secrets_come_from_secret_refs() -> None:
    refs = 0
    for workload, pod in _pod_specs():
        for container in _containers(pod):
            where = f"{workload} container {container['name']}"
            for entry in container.get("env", []):
                if not _is_secret_name(entry["name"]):
                    continue
                assert "value" not in entry, f"{where}: {entry['name']} has a literal value"
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                assert ref is not None, f"{where}: {entry['name']} must come from a secretKeyRef"
                assert ref["name"] == SECRET_NAME and ref["key"] == entry["name"], where
                refs += 1
            for source in container.get("envFrom", []):
                assert "secretRef" not in source, f"{where}: use explicit secretKeyRefs"
    assert refs >= 3
    for config_map in _k8s("ConfigMap"):
        secret_keys = {k for k in config_map.get("data", {}) if _is_secret_name(k)}
        assert secret_keys == set(), f"ConfigMap {config_map['metadata']['name']}: {secret_keys}"


def test_api_token_is_required_by_the_workers() -> None:
    worker = _one("StatefulSet")
    env = {e["name"]: e for e in _containers(_pod_spec(worker) or {})[0]["env"]}
    ref = env["HYGIENE_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref.get("optional", False) is False


def test_secret_example_holds_placeholders_only() -> None:
    path = K8S_DIR / EXAMPLE_SECRET_FILE
    assert "never commit real secrets" in path.read_text(encoding="utf-8").lower()
    docs = [doc for name, doc in _k8s_docs() if name == EXAMPLE_SECRET_FILE]
    assert [d["kind"] for d in docs] == ["Secret"]
    secret = docs[0]
    assert secret["metadata"]["name"] == SECRET_NAME
    assert "data" not in secret, "base64 `data` would hide what the values are: use stringData"
    values = _mapping(secret["stringData"], "stringData")
    for key, value in values.items():
        assert isinstance(value, str), key
        assert value.startswith(PLACEHOLDER), f"{key} is not a {PLACEHOLDER} placeholder"
    referenced = {
        entry["valueFrom"]["secretKeyRef"]["key"]
        for _, pod in _pod_specs()
        for container in _containers(pod)
        for entry in container.get("env", [])
        if "secretKeyRef" in entry.get("valueFrom", {})
    }
    assert set(values) == referenced, "the example must show exactly the keys the pods read"
    assert set(values) <= SECRET_ENV


def test_compose_secrets_come_from_the_environment() -> None:
    checked = 0
    for name, service in _services().items():
        for key, value in _compose_env(service).items():
            if not _is_secret_name(key):
                continue
            match = COMPOSE_SECRET_VALUE.match(value or "")
            assert match, f"{name}: {key} must be a ${{...}} reference, not {value!r}"
            assert match["var"] in SECRET_ENV, f"{name}: {key} reads ${{{match['var']}}}"
            if match["op"] in (":-", "-"):
                # Empty (an optional secret), never a value written here.
                assert match["arg"] == "", (
                    f"{name}: {key} defaults to {match['arg']!r}: a secret in the repository"
                )
            checked += 1
        command = service.get("command", [])
        if isinstance(command, list):
            for flag, value in itertools.pairwise(command):
                if str(flag) == "--requirepass":
                    found = COMPOSE_SECRET_VALUE.match(str(value))
                    assert found, f"{name}: literal password"
                    assert found["op"] in (":?", "?"), f"{name}: the password must be required"
                    checked += 1
    assert checked >= 5


def test_compose_requires_the_api_token() -> None:
    for name in ("worker-1", "worker-2"):
        value = _compose_env(_services()[name])["HYGIENE_API_TOKEN"] or ""
        match = COMPOSE_SECRET_VALUE.match(value)
        assert match and match["var"] == "HYGIENE_API_TOKEN" and match["op"] == ":?", value


def test_compose_variable_references_are_well_formed() -> None:
    for text in _strings(_compose()):
        rest = COMPOSE_VARIABLE.sub("", text.replace("$$", ""))
        assert "$" not in rest, f"bad $-reference in {text!r} (write $$ for a literal $)"


# ---- Kubernetes: the StatefulSet -------------------------------------------------
def _worker() -> tuple[Doc, Doc, Doc]:
    statefulset = _one("StatefulSet")
    pod = _pod_spec(statefulset)
    assert pod is not None
    workers = [c for c in _containers(pod) if c["name"] == "worker"]
    assert len(workers) == 1
    return statefulset, pod, workers[0]


def _probe_port(container: Doc, probe: Doc) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    by_name = {p["name"]: p["containerPort"] for p in container["ports"]}
    return int(by_name[port])


def test_statefulset_runs_the_worker_on_rocksdb() -> None:
    _, _, container = _worker()
    assert container.get("args") == ["worker"] and "command" not in container
    literal = {e["name"]: e.get("value") for e in container["env"]}
    assert literal["HYGIENE_STORE"] == "rocksdb://"


def test_statefulset_state_lives_on_a_volume_claim() -> None:
    statefulset, pod, container = _worker()
    data_dir = _container_env(container)["HYGIENE_DATA_DIR"]
    templates = {
        t["metadata"]["name"]: t for t in _list(statefulset["spec"]["volumeClaimTemplates"], "vct")
    }
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert data_dir in mounts, f"nothing is mounted at HYGIENE_DATA_DIR={data_dir}"
    claim = mounts[data_dir]["name"]
    assert claim in templates, f"{data_dir} is not on a volumeClaimTemplate"
    assert claim not in {v["name"] for v in pod.get("volumes", [])}, "shadowed by a pod volume"
    assert not mounts[data_dir].get("readOnly", False) and "subPath" not in mounts[data_dir]
    spec = templates[claim]["spec"]
    assert spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["resources"]["requests"]["storage"]
    assert data_dir == _dockerfile_env()["HYGIENE_DATA_DIR"]


def test_statefulset_probes() -> None:
    _, _, container = _worker()
    web_port = int(_container_env(container)["HYGIENE_WEB_PORT"])
    assert web_port == _web_port_default()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    if "startupProbe" in container:
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in container:
            assert _probe_port(container, container[probe]) == web_port, probe


def test_statefulset_shuts_down_cleanly_and_is_sized() -> None:
    statefulset, pod, container = _worker()
    assert pod["terminationGracePeriodSeconds"] >= 60
    requests = container["resources"]["requests"]
    assert (str(requests["cpu"]), requests["memory"]) == ("2", "2Gi")
    assert container["resources"]["limits"]["memory"] == "2Gi"
    partitions = int(_container_env(container)["HYGIENE_PARTITIONS"])
    assert 1 <= statefulset["spec"]["replicas"] <= partitions


def test_statefulset_is_scraped_by_prometheus() -> None:
    statefulset, _, container = _worker()
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == _container_env(container)["HYGIENE_WEB_PORT"]


def test_statefulset_services_and_disruption_budget() -> None:
    statefulset, _, container = _worker()
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    selector = statefulset["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    ports = {p["name"] for p in container["ports"]}

    headless = _by_name("Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"].get("publishNotReadyAddresses") is True
    api = [
        s
        for s in _k8s("Service")
        if s["spec"].get("clusterIP") != "None"
        and s["spec"].get("type", "ClusterIP") == "ClusterIP"
    ]
    assert len(api) == 1
    for service in (headless, api[0]):
        assert service["spec"]["selector"].items() <= pod_labels.items()
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports or port["targetPort"] == _web_port_default()

    budget = _one("PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == selector


def test_rules_file_is_mounted_from_the_configmap() -> None:
    _, pod, container = _worker()
    rules_file = PurePosixPath(_container_env(container)["HYGIENE_RULES_FILE"])
    assert rules_file == PurePosixPath("/etc/hygiene/rules.yaml")
    mounts = {PurePosixPath(m["mountPath"]): m for m in container["volumeMounts"]}
    mount = mounts[rules_file.parent]
    assert mount.get("readOnly") is True
    volume = {v["name"]: v for v in pod["volumes"]}[mount["name"]]
    items = {i["path"]: i["key"] for i in volume["configMap"].get("items", [])}
    key = items.get(rules_file.name, rules_file.name)
    text = _by_name("ConfigMap", volume["configMap"]["name"])["data"][key]
    ruleset = parse_rules(yaml.safe_load(text), "configmap rules.yaml")
    assert ruleset.version
    assert yaml.safe_load(text) == yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8")), (
        "the rules in configmap.yaml differ from processor/rules/default.yaml: copy the "
        "default into the hygiene-rules ConfigMap (indented under `rules.yaml: |`)"
    )


def test_pods_run_unprivileged_as_the_image_user() -> None:
    user = dict(_final_stage())["USER"].split(":")[0]
    for workload, pod in _pod_specs():
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, workload
        assert str(context["runAsUser"]) == user, workload
        for container in _containers(pod):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, workload
            assert security["capabilities"]["drop"] == ["ALL"], workload


def test_service_links_cannot_inject_hygiene_variables() -> None:
    # Kubernetes injects <SERVICE>_PORT, <SERVICE>_SERVICE_HOST, ... for every
    # Service: "hygiene-api" would become HYGIENE_API_*, right in the settings'
    # namespace.
    linked = [s["metadata"]["name"].upper().replace("-", "_") for s in _k8s("Service")]
    if any(name.startswith("HYGIENE_") for name in linked):
        for workload, pod in _pod_specs():
            assert pod.get("enableServiceLinks") is False, workload


# ---- Kubernetes: the topics Job and kustomize --------------------------------------
def test_topics_job_creates_topics_with_the_workers_settings() -> None:
    job = _one("Job")
    pod = _pod_spec(job)
    assert pod is not None and pod["restartPolicy"] in {"Never", "OnFailure"}
    (container,) = _containers(pod)
    assert container.get("args") == ["topics", "create"] and "command" not in container
    _, _, worker = _worker()
    assert container["image"] == worker["image"]
    assert container["envFrom"] == worker["envFrom"]


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    kustomization = _one("Kustomization")
    assert kustomization["namespace"] == NAMESPACE
    resources = _list(kustomization["resources"], "resources")
    expected = {
        p.relative_to(K8S_DIR).as_posix()
        for p in _k8s_files()
        if p.name not in {"kustomization.yaml", EXAMPLE_SECRET_FILE}
    }
    assert sorted(resources) == sorted(expected)
    images = {i["name"] for i in kustomization["images"]}
    used = {
        c["image"].rsplit(":", 1)[0] for _, pod in _pod_specs() for c in _containers(pod)
    }
    assert used <= images


def test_first_install_selector_picks_the_job_and_its_config_only() -> None:
    # README: kubectl apply -k ... -l 'app.kubernetes.io/component notin (worker,api)'
    picked = {
        (doc["kind"], doc["metadata"]["name"])
        for name, doc in _k8s_docs()
        if doc["kind"] != "Kustomization"
        and name != EXAMPLE_SECRET_FILE
        and doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        not in {"worker", "api"}
    }
    kinds = {kind for kind, _ in picked}
    assert kinds == {"Namespace", "ConfigMap", "Job"}
    assert "notin (worker,api)" in (K8S_DIR / "README.md").read_text(encoding="utf-8")


# ---- docker compose ----------------------------------------------------------------
HYGIENE_SERVICES = ("topic-init", "worker-1", "worker-2", "simulator", "notifier")


def test_compose_kafka_is_single_node_kraft() -> None:
    kafka = _services()["kafka"]
    assert re.fullmatch(r"apache/kafka:3\.9\.\d+", kafka["image"])
    env = _compose_env(kafka)
    assert set((env["KAFKA_PROCESS_ROLES"] or "").split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kafka["ports"] == ["127.0.0.1:9092:9092"]
    listeners = (env["KAFKA_ADVERTISED_LISTENERS"] or "").split(",")
    advertised: dict[str, str] = {}
    for listener in listeners:
        name, _, address = listener.partition("://")
        advertised[address] = name
    assert "localhost:9092" in advertised
    for name in HYGIENE_SERVICES:
        bootstrap = _compose_env(_services()[name])["HYGIENE_KAFKA_BOOTSTRAP"]
        assert bootstrap in advertised and bootstrap != "localhost:9092", name
    assert kafka["healthcheck"]["test"]


def test_compose_ports_are_published_on_localhost_only() -> None:
    for name, service in _services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_compose_redis_requires_a_password_and_has_a_healthcheck() -> None:
    redis = _services()["redis"]
    assert redis["image"] == "redis:7-alpine"
    assert "--requirepass" in redis["command"]
    assert redis["healthcheck"]["test"]
    password = redis["command"][redis["command"].index("--requirepass") + 1]
    for name in ("worker-1", "worker-2"):
        assert _compose_env(_services()[name])["HYGIENE_REDIS_PASSWORD"] == password


def test_compose_topic_init_runs_once_after_kafka_is_healthy() -> None:
    init = _services()["topic-init"]
    assert init["command"] == ["topics", "create"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert init.get("restart", "no") == "no"
    assert "profiles" not in init


def test_compose_workers() -> None:
    services = _services()
    declared = _mapping(_compose()["volumes"], "volumes")
    volumes, host_ports = set(), set()
    for name in ("worker-1", "worker-2"):
        worker = services[name]
        assert worker["command"] == ["worker"] and "profiles" not in worker
        depends = worker["depends_on"]
        assert depends["topic-init"]["condition"] == "service_completed_successfully"
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        env = _compose_env(worker)
        assert env["HYGIENE_STORE"] == "rocksdb://"
        data_dir = env["HYGIENE_DATA_DIR"]
        assert data_dir == _dockerfile_env()["HYGIENE_DATA_DIR"]
        (volume,) = [v for v in worker["volumes"] if str(v).split(":")[1] == data_dir]
        source = str(volume).split(":")[0]
        assert source in declared, f"{name}: {source} is not a named volume"
        volumes.add(source)
        web_port = env["HYGIENE_WEB_PORT"]
        (port,) = worker["ports"]
        _, host, container_port = str(port).split(":")
        assert container_port == web_port, name
        host_ports.add(int(host))
        assert worker["hostname"] == name
        assert _seconds(worker["stop_grace_period"]) >= 60
        assert worker["healthcheck"]["test"]
    assert len(volumes) == 2, "each worker needs its own RocksDB volume"
    assert host_ports == {6066, 6067}


def test_compose_optional_services_sit_behind_profiles() -> None:
    services = _services()
    simulator, notifier = services["simulator"], services["notifier"]
    assert simulator["profiles"] == ["demo"]
    assert simulator["command"][:2] == ["simulate", "--to-broker"]
    assert simulator["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
    assert notifier["profiles"] == ["slack"]
    assert notifier["command"] == ["notify", "slack"]
    webhook = _compose_env(notifier)["HYGIENE_SLACK_WEBHOOK_URL"] or ""
    match = COMPOSE_SECRET_VALUE.match(webhook)
    assert match and match["var"] == "HYGIENE_SLACK_WEBHOOK_URL"


def test_compose_dependencies_exist_and_respect_profiles() -> None:
    services = _services()
    for name, service in services.items():
        depends = service.get("depends_on", {})
        for dependency in depends:
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if "profiles" not in service:
                assert "profiles" not in services[dependency], (
                    f"{name} (always on) depends on {dependency}, which is behind a profile"
                )
            if "condition" in depends[dependency] and depends[dependency]["condition"] == (
                "service_healthy"
            ):
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"


def test_compose_hygiene_services_share_the_built_image() -> None:
    services = _services()
    for name in HYGIENE_SERVICES:
        service = services[name]
        assert service["image"] == "revops-hygiene:dev", name
        assert service["build"]["context"] == ".", name


# ---- Dockerfile --------------------------------------------------------------------
def test_dockerfile() -> None:
    instructions = _dockerfile()
    args = {}
    for keyword, value in instructions:
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in value:
            key, _, default = value.partition("=")
            args[key] = default
    base = _final_stage()[0][1].split()[0]
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], base)
    assert base.startswith("python:3.11-slim"), base

    final = dict(_final_stage())  # last occurrence of each instruction wins
    user = final["USER"].split(":")[0]
    assert user not in {"root", "0"} and user.strip()
    assert json.loads(final["ENTRYPOINT"]) == ["hygiene"]
    assert json.loads(final["CMD"]) == ["worker"]
    assert final["WORKDIR"] == "/app"
    assert str(_web_port_default()) in final["EXPOSE"].split()
    volumes = json.loads(final["VOLUME"])
    assert _dockerfile_env()["HYGIENE_DATA_DIR"] in volumes
    assert any(
        kw == "RUN" and re.search(r"pip install (?:--?\S+ )*\.(?:\s|$)", v)
        for kw, v in instructions
    ), "the image must install the project with `pip install .`"


def test_dockerignore_keeps_secrets_and_clutter_out_of_the_build_context() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".env", "**/__pycache__"} <= patterns
    needed = {"pyproject.toml", "README.md", "processor", "schemas"}
    assert not needed & patterns, "the build needs these"
    assert not any(p.startswith("!") for p in patterns)
