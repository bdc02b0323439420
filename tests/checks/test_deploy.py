"""The Docker deployment, checked offline: no Docker engine runs on our
machines, so the compose files, HAProxy configs and scripts are parsed and
cross-checked here instead of being started."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from ledger.storage import dialect

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "cockroach"
CLUSTER_FILES = [DEPLOY / "docker-compose.yml", DEPLOY / "docker-compose.secure.yml"]
ALL_FILES = [ROOT / "docker-compose.yml", *CLUSTER_FILES]


def load(path: Path) -> tuple[dict, dict[str, Path]]:
    """The compose file with its `include`s merged, and each service's folder
    (relative paths in a service resolve against the file that defines it)."""
    data = yaml.safe_load(path.read_text())
    services = dict(data.get("services", {}))
    where = dict.fromkeys(services, path.parent)
    volumes = dict(data.get("volumes") or {})
    for included in data.get("include", []):
        sub, sub_where = load(path.parent / included)
        assert not set(sub["services"]) & set(services), "include must not redefine services"
        services.update(sub["services"])
        where.update(sub_where)
        volumes.update(sub.get("volumes") or {})
    return {**data, "services": services, "volumes": volumes}, where


def words(command) -> list[str]:
    return command if isinstance(command, list) else shlex.split(command or "")


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def roach_nodes(services: dict) -> list[str]:
    return sorted(n for n, s in services.items() if "start" in words(s.get("command"))[:1])


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_service_is_runnable_and_depends_only_on_real_services(path):
    compose, where = load(path)
    services = compose["services"]
    for name, service in services.items():
        assert service.get("image") or service.get("build"), f"{name}: no image or build"
        depends = service.get("depends_on") or []
        conditions = depends if isinstance(depends, dict) else dict.fromkeys(depends)
        for other, spec in conditions.items():
            assert other in services, f"{name} depends on unknown service {other}"
            assert (spec or {}).get("condition", "service_started") in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (where[name] / source).exists(), f"{name}: missing {source}"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_published_ports_are_unique_and_on_loopback_only(path):
    compose, _ = load(path)
    published = []
    for service in compose["services"].values():
        for port in service.get("ports") or []:
            host_ip, host_port, _container = str(port).split(":")
            assert host_ip == "127.0.0.1", port
            published.append(host_port)
    assert len(published) == len(set(published))


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_the_nodes_join_each_other_and_init_targets_one_of_them(path):
    compose, _ = load(path)
    services = compose["services"]
    nodes = roach_nodes(services)
    assert nodes == ["roach1", "roach2", "roach3"]
    for node in nodes:
        args = words(services[node]["command"])
        flags = dict(a.split("=", 1) for a in args if a.startswith("--") and "=" in a)
        assert sorted(h.split(":")[0] for h in flags["--join"].split(",")) == nodes
        assert flags["--advertise-addr"] == f"{node}:26257"
        assert flags["--http-addr"] == f"{node}:8080"
        secure = "--certs-dir" in flags
        assert secure == (path.name == "docker-compose.secure.yml")
        assert ("--insecure" in args) != secure
        assert services[node]["stop_grace_period"] == "60s"
    init = services["init"]
    assert env_of(init)["COCKROACH_HOST"].split(":")[0] in nodes
    script = (DEPLOY / "init.sh").read_text()
    assert "cockroach init" in script and "settings.sql" in script
    assert "COCKROACH_LICENSE" in script


@pytest.mark.parametrize(
    ("compose_path", "cfg"),
    [
        (DEPLOY / "docker-compose.yml", "haproxy.cfg"),
        (DEPLOY / "docker-compose.secure.yml", "haproxy.secure.cfg"),
    ],
)
def test_haproxy_balances_every_node_and_checks_readiness(compose_path, cfg):
    compose, _ = load(compose_path)
    services = compose["services"]
    assert any(cfg in v for v in services["haproxy"]["volumes"])
    text = (DEPLOY / cfg).read_text()
    assert "option httpchk GET /health?ready=1" in text
    servers = re.findall(r"^\s*server (\S+) (\S+):26257 check port 8080", text, re.M)
    assert sorted(name for name, _ in servers) == roach_nodes(services)
    assert all(name == host for name, host in servers)
    assert re.search(r"^\s*bind :26257$", text, re.M)
    assert "26257:26257" in " ".join(services["haproxy"]["ports"])
    if "secure" in cfg:
        assert text.count("check-ssl") == 3


def test_the_stack_migrates_once_then_serves_through_haproxy_as_the_writer():
    compose, _ = load(ROOT / "docker-compose.yml")
    services = compose["services"]
    migrate = services["migrate"]
    args = words(migrate["command"])
    assert args[0] == "migrate"
    admin_url = args[args.index("--database-url") + 1]
    replicas = [n for n, s in services.items() if words(s.get("command"))[:1] == ["serve"]]
    assert replicas == ["ledger1", "ledger2"]
    for name in replicas:
        service = services[name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        url = env_of(service)["LEDGER_DATABASE_URL"]
        assert dialect.dialect_name(url) == "cockroachdb"
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == ("haproxy", 26257)
        assert parts.username == "ledger_writer"  # the append-only role
        assert parts.path == urlsplit(admin_url).path == "/ledger"
        assert "--host" in words(service["command"])  # reachable from Locust
        # The admin key comes from the operator's environment, never the file.
        assert env_of(service)["LEDGER_BOOTSTRAP_KEY"].startswith("${LEDGER_API_KEY:?")
    assert urlsplit(admin_url).hostname == "haproxy"
    assert "CREATE DATABASE IF NOT EXISTS ledger" in (DEPLOY / "settings.sql").read_text()


def test_locust_master_and_worker_drive_both_replicas_with_a_real_locustfile():
    compose, _ = load(ROOT / "docker-compose.yml")
    services = compose["services"]
    master, worker = services["locust-master"], services["locust-worker"]
    m_args, w_args = words(master["command"]), words(worker["command"])
    locustfile = m_args[m_args.index("-f") + 1]
    assert locustfile == w_args[w_args.index("-f") + 1]
    assert (ROOT / locustfile.removeprefix("/app/")).is_file()
    assert "--master" in m_args and "--worker" in w_args
    assert w_args[w_args.index("--master-host") + 1] == "locust-master"
    workers = [n for n, s in services.items() if "--worker" in words(s.get("command"))]
    assert int(m_args[m_args.index("--expect-workers") + 1]) == len(workers)
    for service in (master, worker):
        targets = env_of(service)["LEDGER_TARGETS"].split(",")
        assert sorted(urlsplit(t).hostname for t in targets) == ["ledger1", "ledger2"]


def test_the_image_builds_from_files_that_exist():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert 'ENTRYPOINT ["ledger"]' in dockerfile
    assert "--uid 10001" in dockerfile  # certs.sh hands the client key to this uid
    assert "chown 10001" in (DEPLOY / "certs.sh").read_text()


def test_the_deploy_readme_warns_about_the_licence_and_gives_the_order():
    readme = (DEPLOY / "README.md").read_text()
    assert "throttled after seven days" in readme
    for step in ("docker compose up -d --build", "ledger1 verify", "docker-compose.secure.yml"):
        assert step in readme


@pytest.mark.parametrize("script", ["init.sh", "certs.sh"])
def test_the_scripts_parse(script):
    import subprocess

    result = subprocess.run(["bash", "-n", str(DEPLOY / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_compose_drills_kill_and_restart_the_right_containers():
    """The drill against the Compose stack cannot run here (no Docker
    engine); what it would run can be checked."""
    from ledger.ops.drill import compose_plan
    from ledger.ops.files import SCENARIOS

    base = ["docker", "compose", "-f", "docker-compose.yml", "-p", "ledger"]
    assert compose_plan("service-kill", 3) == [
        [*base, "kill", "-s", "SIGKILL", "ledger1"],
        ["sleep", "3"],
        [*base, "start", "ledger1"],
    ]
    assert compose_plan("db-restart", 3) == [
        [*base, "kill", "-s", "SIGKILL", "roach1"],
        [*base, "start", "roach1"],
    ]
    assert compose_plan("db-primary-kill", 2.5)[1] == ["sleep", "2.5"]
    (reset,) = compose_plan("conn-reset", 3)
    assert reset[:7] == [*base, "exec"] and "CANCEL SESSIONS" in reset[-1]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    cluster = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = set(compose["services"]) | set(cluster["services"])
    for scenario in SCENARIOS:
        for command in compose_plan(scenario, 1):
            if command[0] == "docker" and command[6] in ("kill", "start", "exec"):
                name = command[-1] if command[6] != "exec" else command[8]
                assert name in services, (scenario, name)
