"""deploy/ checked as far as this machine allows (no containers, no Kubernetes here).

- The Kubernetes manifests validate strictly against the Kubernetes 1.31 API schemas (kubernetes-validate); the
  KubeRay `RayCluster`'s pod templates validate as core pod templates, and Ray's own KubeRay autoscaler reads the
  cluster's node groups from it.
- The compose file, interpolated and merged as `docker compose` does, parses under the compose specification
  (compose-spec) with every volume it uses declared.
- Health and readiness endpoints, the orchestrator's health check, JSON logs.
- The production server as deploy/README.md runs it (gunicorn + uvicorn workers, production settings, PostgreSQL
  and Redis) serves its probes, a page and a websocket carrying a live event.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
K8S_VERSION = "1.31.0"


def _manifests() -> list[tuple[str, dict]]:
    return [
        (path.name, doc)
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


# ------------------------------------------------------------------------------------------------- Kubernetes
def test_every_core_kubernetes_object_validates_against_the_api_schema():
    import kubernetes_validate

    kinds = []
    for name, doc in _manifests():
        if doc["kind"] == "RayCluster":
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        kinds.append(doc["kind"])
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "lumen", name
    assert {"Deployment", "Service", "Ingress", "Job", "ConfigMap", "Secret", "PersistentVolumeClaim"} <= set(kinds)


def test_a_misspelt_field_fails_the_schema_check():
    import kubernetes_validate

    web = next(doc for _, doc in _manifests() if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "lumen-web")
    web["spec"]["template"]["spec"]["containers"][0]["livenesProbe_"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, K8S_VERSION, strict=True)


def _containers(doc: dict) -> list[dict]:
    if doc["kind"] == "RayCluster":
        templates = [doc["spec"]["headGroupSpec"]["template"]]
        templates += [group["template"] for group in doc["spec"]["workerGroupSpecs"]]
    elif doc["kind"] in ("Deployment", "Job"):
        templates = [doc["spec"]["template"]]
    else:
        return []
    return [container for template in templates for container in template["spec"]["containers"]]


def test_every_lumen_container_runs_the_same_image_and_mounts_the_shared_media_volume():
    images = set()
    for name, doc in _manifests():
        for container in _containers(doc):
            images.add(container["image"])
            if doc["kind"] != "Job":
                mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
                assert "/srv/media" in mounts, (name, container["name"])
    assert len(images) == 1, images


def test_the_web_probes_and_commands_name_things_that_exist():
    from django.core.management import get_commands

    docs = {doc["metadata"]["name"]: doc for _, doc in _manifests() if doc["kind"] in ("Deployment", "Job")}
    web = docs["lumen-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["command"][:3] == ["gunicorn", "-c", "deploy/gunicorn.conf.py"]
    assert (REPO / web["command"][2]).exists()
    commands = get_commands()
    for name in ("lumen-orchestrator", "lumen-import-worker", "lumen-migrate"):
        container = _containers(docs[name])[0]
        assert container["command"][:2] == ["python", "manage.py"] and container["command"][2] in commands, name
    probe = docs["lumen-orchestrator"]["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["exec"]
    assert probe["command"][:4] == ["python", "manage.py", "healthcheck", "--orchestrator"]


def test_the_ray_cluster_has_valid_pod_templates_and_an_autoscaling_gpu_group():
    import kubernetes_validate
    import ray
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    cluster = next(doc for _, doc in _manifests() if doc["kind"] == "RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["spec"]["rayVersion"] == ray.__version__  # the image's Ray (requirements/lock.txt)
    groups = [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]
    for group in groups:
        template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": group["template"]}
        kubernetes_validate.validate(template, K8S_VERSION, strict=True)
    # What the KubeRay autoscaler (run in the head pod) derives from this resource.
    config = _derive_autoscaling_config_from_ray_cr(
        {**cluster, "metadata": {**cluster["metadata"], "namespace": "lumen"}}
    )
    types = config["available_node_types"]
    assert types["headgroup"]["resources"]["CPU"] == 0  # the head schedules, never computes
    assert types["gpu"]["resources"]["GPU"] == 1
    assert types["gpu"]["min_workers"] == 0 and types["gpu"]["max_workers"] >= 2
    assert types["cpu"]["min_workers"] >= 1
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    # The orchestrator reaches the head through the Service KubeRay creates for it.
    config_map = next(doc for _, doc in _manifests() if doc["kind"] == "ConfigMap")
    assert config_map["data"]["RAY_ADDRESS"] == f"ray://{cluster['metadata']['name']}-head-svc:10001"


# ----------------------------------------------------------------------------------------------------- compose
COMPOSE_ENV = {
    "POSTGRES_PASSWORD": "pw",
    "LUMEN_SECRET_KEY": "k1",
    "LUMEN_PSEUDONYM_KEY": "k2",
    "LUMEN_CREDENTIALS_KEY": "k3",
}
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def compose_interpolate(text: str, environment: dict[str, str]) -> str:
    """Substitute `${NAME}`, `${NAME:-default}` and `${NAME:?error}` as docker compose does before parsing."""

    def substitute(match: re.Match) -> str:
        name, operator, argument = match.groups()
        value = environment.get(name)
        empty_counts = operator is not None and operator.startswith(":")
        if value is not None and not (empty_counts and value == ""):
            return value
        if operator in (":-", "-"):
            return argument
        if operator in (":?", "?"):
            raise ValueError(f"{name}: {argument}")
        return ""

    return VARIABLE.sub(substitute, text.replace("$$", "\0")).replace("\0", "$")


def _compose(environment: dict[str, str]):
    from compose_spec import PyCompose

    # Interpolation, then YAML merge keys (PyYAML resolves `<<`), then the specification's own model and checks.
    document = yaml.safe_load(compose_interpolate((DEPLOY / "compose.yaml").read_text(), environment))
    compose = PyCompose.from_yaml(yaml.safe_dump(document))
    compose.validate()
    compose.to_spec()
    # The specification: a named volume a service mounts is declared at the top level (compose-spec checks this
    # only for volumes shared by several services).
    for name, service in document["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/", "$")) and source not in (document.get("volumes") or {}):
                raise ValueError(f"service {name} mounts undeclared volume {source}")
    return compose, document


def test_the_compose_file_follows_the_compose_specification():
    compose, document = _compose(COMPOSE_ENV)
    assert set(compose.service_names()) == {
        "proxy",
        "web",
        "migrate",
        "orchestrator",
        "ray-head",
        "ray-gpu-worker",
        "postgres",
        "redis",
    }
    services = document["services"]
    lumen = {name for name, service in services.items() if service.get("build")}
    assert lumen == {"web", "migrate", "orchestrator", "ray-head", "ray-gpu-worker"}
    assert {services[name]["image"] for name in lumen} == {"lumen:latest"}
    assert services["web"]["command"][:3] == ["gunicorn", "-c", "deploy/gunicorn.conf.py"]
    gpu = services["ray-gpu-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"] and gpu["count"] == 1
    template = services["proxy"]["volumes"][0].split(":")[0]
    assert (DEPLOY / template).exists()


def test_compose_refuses_to_start_without_the_keys():
    missing = {k: v for k, v in COMPOSE_ENV.items() if k != "LUMEN_CREDENTIALS_KEY"}
    with pytest.raises(ValueError, match="LUMEN_CREDENTIALS_KEY"):
        _compose(missing)


def test_a_volume_used_but_not_declared_fails_the_specification_check(tmp_path, monkeypatch):
    from compose_spec import PyCompose

    document = yaml.safe_load(compose_interpolate((DEPLOY / "compose.yaml").read_text(), COMPOSE_ENV))
    for name in ("web", "orchestrator"):
        document["services"][name]["volumes"] = ["undeclared:/srv/x"]
    with pytest.raises(ValueError, match="undeclared"):
        PyCompose.from_yaml(yaml.safe_dump(document)).validate()
    document["services"]["orchestrator"]["volumes"] = []
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(document))
    monkeypatch.setattr(sys.modules[__name__], "DEPLOY", tmp_path)
    with pytest.raises(ValueError, match="service web mounts undeclared volume undeclared"):
        _compose(COMPOSE_ENV)


def test_the_proxy_passes_websockets_and_serves_static_files():
    template = (DEPLOY / "nginx.conf.template").read_text()
    websocket = template[template.index("location /ws/") :]
    websocket = websocket[: websocket.index("}")]
    assert "proxy_set_header Upgrade $http_upgrade" in websocket
    assert "location /static/" in template and "alias /srv/static/" in template
    assert "proxy_request_buffering off" in template


def test_the_dockerfile_installs_the_locked_requirements_and_serves_with_gunicorn():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "pip install -r requirements/base.in -c requirements/lock.txt" in dockerfile
    lock = (REPO / "requirements" / "lock.txt").read_text().splitlines()
    torch = next(line for line in lock if line.startswith("torch=="))
    assert f"pip install {torch}" in dockerfile
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))
    assert cmd == ["gunicorn", "-c", "deploy/gunicorn.conf.py", "webapp.asgi:application"]
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ".venv" in ignored and "var" in ignored  # never the developer's virtualenv, keys or database


# ------------------------------------------------------------------------------------------- health and logs
@pytest.mark.django_db
def test_healthz_and_readyz_answer_probes_before_host_checks_and_https_redirects(client, settings):
    settings.ALLOWED_HOSTS = ["lumen.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    # A kubelet probes the pod's IP over plain HTTP.
    live = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = client.get("/readyz", HTTP_HOST="10.1.2.3:8000")
    assert ready.status_code == 200, ready.content
    checks = {check["name"]: check for check in ready.json()["checks"]}
    assert checks["database"]["ok"] is True
    assert ("redis" in checks) == bool(settings.REDIS_URL)
    # Any other path still meets the host check.
    assert client.get("/login/", HTTP_HOST="10.1.2.3:8000").status_code == 400


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.django_db
def test_readyz_says_which_dependency_is_down(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    answer = client.get("/readyz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "not ready"
    checks = {check["name"]: check for check in body["checks"]}
    assert checks["redis"]["ok"] is False and checks["redis"]["error"]
    assert checks["database"]["ok"] is True


def _healthcheck(tmp_path: Path, *args: str) -> tuple[int, dict]:
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = StringIO()
    try:
        call_command("healthcheck", *args, stdout=out)
        code = 0
    except CommandError:
        code = 1
    return code, json.loads(out.getvalue())


@pytest.mark.django_db
def test_the_orchestrator_health_check_reads_the_status_file(tmp_path, settings):
    from annotation.services.health import OrchestratorStatus

    settings.LUMEN_ORCHESTRATOR_STATUS_FILE = tmp_path / "status.json"
    code, report = _healthcheck(tmp_path, "--orchestrator")
    assert code == 1 and "no status file" in report["problems"][0]
    OrchestratorStatus(backend="inline").write()
    assert _healthcheck(tmp_path, "--orchestrator") == (0, {"ok": True, "problems": []})
    # A loop that stopped going round is unhealthy…
    stale = json.loads(settings.LUMEN_ORCHESTRATOR_STATUS_FILE.read_text())
    settings.LUMEN_ORCHESTRATOR_STATUS_FILE.write_text(json.dumps({**stale, "time": time.time() - 600}))
    code, report = _healthcheck(tmp_path, "--orchestrator", "--max-age", "120")
    assert code == 1 and "last went round" in report["problems"][0]
    # …and so is one whose Ray cluster is gone.
    settings.LUMEN_ORCHESTRATOR_STATUS_FILE.write_text(
        json.dumps({**stale, "backend": "ray", "ray": {"ok": False, "error": "ConnectionError"}})
    )
    code, report = _healthcheck(tmp_path, "--orchestrator")
    assert code == 1 and "Ray cluster unreachable (ConnectionError)" in report["problems"]


@pytest.mark.django_db
def test_a_long_job_with_a_fresh_heartbeat_is_not_a_hang(tmp_path, settings):
    from django.utils import timezone

    from annotation.models import Job, JobKind, JobStatus
    from annotation.services.health import OrchestratorStatus

    settings.LUMEN_ORCHESTRATOR_STATUS_FILE = tmp_path / "status.json"
    job = Job.objects.create(kind=JobKind.TRAIN, status=JobStatus.RUNNING, heartbeat_at=timezone.now())
    OrchestratorStatus(backend="inline").write(job_ids=[job.pk])
    written = json.loads(settings.LUMEN_ORCHESTRATOR_STATUS_FILE.read_text())
    settings.LUMEN_ORCHESTRATOR_STATUS_FILE.write_text(json.dumps({**written, "time": time.time() - 600}))
    assert _healthcheck(tmp_path, "--orchestrator", "--max-age", "120")[0] == 0
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timezone.timedelta(seconds=600))
    assert _healthcheck(tmp_path, "--orchestrator", "--max-age", "120")[0] == 1


def _settings_process(code: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings.test", **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_json_logs_are_one_object_per_line():
    code = "import django; django.setup(); import logging; logging.getLogger('lumen.check').error('job %s failed', 7)"
    done = _settings_process(code, LUMEN_LOG_FORMAT="json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stderr.strip().splitlines()[-1])
    assert record["level"] == "ERROR" and record["logger"] == "lumen.check" and record["message"] == "job 7 failed"
    assert {"time", "process"} <= set(record)
    refused = _settings_process("import django; django.setup()", LUMEN_LOG_FORMAT="xml")
    assert refused.returncode != 0 and "LUMEN_LOG_FORMAT must be plain or json" in refused.stderr


# ------------------------------------------------------------------------------ the production server, for real
def _postgres_admin_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        return url.rsplit("/", 1)[0] + "/postgres"
    return "postgres://postgres@127.0.0.1:5432/postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def production_server(tmp_path):
    """gunicorn + uvicorn workers with webapp.settings.production on a fresh PostgreSQL database and Redis."""
    import psycopg

    admin = _postgres_admin_url()
    database = f"lumen_deploy_check_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')
    port = _free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LUMEN_", "DJANGO_"))},
        "DJANGO_SETTINGS_MODULE": "webapp.settings.production",
        "DATABASE_URL": admin.rsplit("/", 1)[0] + f"/{database}",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "LUMEN_SECRET_KEY": secrets.token_urlsafe(48),
        "LUMEN_PSEUDONYM_KEY": secrets.token_urlsafe(48),
        "LUMEN_CREDENTIALS_KEY": secrets.token_urlsafe(48),
        "LUMEN_CHANNEL_PREFIX": f"lumen-deploy-{os.getpid()}",
        # Plain HTTP on loopback, no TLS proxy in front.
        "LUMEN_SECURE_COOKIES": "false",
        "LUMEN_SSL_REDIRECT": "false",
        "LUMEN_MEDIA_ROOT": str(tmp_path / "media"),
        "LUMEN_STATIC_ROOT": str(tmp_path / "static"),
        "LUMEN_BIND": f"127.0.0.1:{port}",
        "LUMEN_WEB_WORKERS": "2",
        "LUMEN_LOG_FORMAT": "json",
    }
    manage = [sys.executable, "manage.py"]
    for step in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        done = subprocess.run([*manage, *step], cwd=REPO, env=environment, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "webapp.asgi:application"],
        cwd=REPO,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        import requests

        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.5)
        yield url, environment
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


SETUP = """
import django; django.setup()
from django.contrib.auth.models import User
from django.db import transaction
from annotation.models import Membership, Project, Role
from annotation.services.events import members_event_send
user = User.objects.create_user("lead", "lead@example.org", "a long deploy password 1")
project = Project.objects.create(slug="deploy", name="Deploy check", task_type="vessel_type", created_by=user)
Membership.objects.create(project=project, user=user, role=Role.LEAD)
with transaction.atomic():
    members_event_send(project.pk, {"type": "deploy.check", "n": 1})
"""

EVENT = """
import django; django.setup()
from django.db import transaction
from annotation.models import Project
from annotation.services.events import members_event_send
with transaction.atomic():
    members_event_send(Project.objects.get(slug="deploy").pk, {"type": "deploy.check", "n": 2})
"""


def test_the_production_server_serves_probes_a_page_and_a_websocket(production_server):
    import requests
    from websockets.sync.client import connect

    url, environment = production_server
    ready = requests.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert {check["name"] for check in ready.json()["checks"]} == {"database", "redis"}
    done = subprocess.run([sys.executable, "-c", SETUP], cwd=REPO, env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    session = requests.Session()
    login = session.get(f"{url}/login/", timeout=10)
    assert login.status_code == 200 and "csrfmiddlewaretoken" in login.text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    answer = session.post(
        f"{url}/login/",
        data={"username": "lead", "password": "a long deploy password 1", "csrfmiddlewaretoken": token},
        headers={"Referer": f"{url}/login/"},
        timeout=10,
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text[:500]
    page = session.get(f"{url}/projects/deploy/", timeout=10)
    assert page.status_code == 200 and "Deploy check" in page.text

    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    ws_url = url.replace("http://", "ws://") + "/ws/projects/deploy/?after=0"
    with connect(ws_url, additional_headers={"Cookie": cookie, "Origin": url}, open_timeout=10) as socket_:
        first = json.loads(socket_.recv(timeout=15))
        assert first["type"] == "deploy.check" and first["n"] == 1
        # An event committed by another process arrives live (through Redis and the events table).
        done = subprocess.run([sys.executable, "-c", EVENT], cwd=REPO, env=environment, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        second = json.loads(socket_.recv(timeout=15))
        assert second["type"] == "deploy.check" and second["n"] == 2
