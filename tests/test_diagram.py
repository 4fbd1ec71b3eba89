"""The architecture diagrams (tools/diagram.py) of every synthesized environment.

Expectations come from SPEC 4 and the shipped configuration (subnet CIDRs carved from each
environment's CIDR, zones, NAT mode, container port, feature toggles), never from the generator's
output, except for the staleness check, whose whole point is to compare the checked-in files with
what the generator writes now.
"""

from __future__ import annotations

import copy
import json
import re
import shutil

import pytest

from environments.loader import load_project
from environments.model import NatMode
from modules.database import CACHE_PORT
from modules.network import subnet_cidrs
from tests.conftest import ENVIRONMENTS_DIR, ROOT, resources_of
from tools.diagram import (
    INTERNET,
    USERS,
    Diagram,
    baseline_stacks,
    build_baseline_diagram,
    build_diagram,
    dot_path,
    environment_stacks,
    generate,
    main,
    render_dot,
)

DOCS = ROOT / "docs"
REGENERATE = "python main.py && python tools/diagram.py"
# SPEC 4.1 / 4.3: clients reach the load balancer on HTTPS 443; the API reaches PostgreSQL on 5432.
HTTPS_PORT, POSTGRES_PORT = 443, 5432
TIER_CLUSTERS = ("tier_public", "tier_app", "tier_data")
ENVIRONMENT_NAMES = [env.name for env in load_project(ENVIRONMENTS_DIR).environments]


@pytest.fixture(scope="module")
def diagrams(stacks) -> dict[str, Diagram]:
    return {**{name: build_diagram(name, body) for name, body in environment_stacks(stacks).items()},
            **{name: build_baseline_diagram(name, body) for name, body in baseline_stacks(stacks).items()}}


@pytest.fixture(scope="module")
def dot_texts(diagrams) -> dict[str, str]:
    return {name: render_dot(diagram) for name, diagram in diagrams.items()}


@pytest.fixture(params=ENVIRONMENT_NAMES)
def env_diagram(request, project, stacks, diagrams, dot_texts):
    """(environment config, its stack JSON, its diagram, its DOT text)."""
    name = request.param
    return project.environment(name), stacks[name], diagrams[name], dot_texts[name]


def one(nodes: list, what: str):
    assert len(nodes) == 1, f"expected one {what}, found {[node.id for node in nodes]}"
    return nodes[0]


def kinds_in(diagram: Diagram, cluster_id: str) -> set[str]:
    return {node.kind for node in diagram.cluster(cluster_id).nodes}


def dot_edge(source: str, target: str) -> re.Pattern[str]:
    return re.compile(rf'^  "{re.escape(source)}" -> "{re.escape(target)}" \[', re.MULTILINE)


def assert_edge(diagram: Diagram, text: str, source: str, target: str, label_part: str = "") -> None:
    """The edge is in the model (with the label) and drawn in the DOT text."""
    labels = [edge.label for edge in diagram.edges if (edge.source, edge.target) == (source, target)]
    assert labels, f"{diagram.name}: no edge {source} -> {target}"
    assert any(label_part in label for label in labels), f"{diagram.name}: {source} -> {target} {labels}"
    assert dot_edge(source, target).search(text), f"{diagram.name}: edge {source} -> {target} not drawn"


# -- structure ------------------------------------------------------------------------------------


def test_there_is_one_diagram_per_environment_and_baseline_and_none_for_the_bootstrap(project, diagrams):
    """A DR-region stack gets its own diagram: the environment's second region, drawn like its first."""
    assert set(diagrams) == ({env.name for env in project.environments} | {b.stack_name for b in project.baselines}
                             | {env.dr_stack_name for env in project.environments if env.dr})


def test_every_tier_has_its_cluster(env_diagram):
    _, _, diagram, text = env_diagram
    expected = ["edge", "vpc", *TIER_CLUSTERS, "observability"]
    present = [cluster.id for cluster in diagram.all_clusters()]
    assert sorted(present) == sorted(expected)
    assert [cluster.id for cluster in diagram.cluster("vpc").clusters] == list(TIER_CLUSTERS)
    for cluster_id in expected:
        assert f'subgraph "cluster_{cluster_id}" {{' in text


def test_every_subnet_appears_with_its_cidr_and_zone(env_diagram):
    env, stack, diagram, text = env_diagram
    zones = env.network.availability_zones(env.region)
    expected = subnet_cidrs(env.network.cidr, env.network.az_count)
    assert sum(len(cidrs) for cidrs in expected.values()) == len(resources_of(stack, "aws_subnet"))
    for tier, cidrs in expected.items():
        nodes = [node for node in diagram.cluster(f"tier_{tier}").nodes if node.kind == "subnet"]
        assert len(nodes) == len(cidrs), f"{tier}: {[node.label for node in nodes]}"
        for cidr, zone in zip(cidrs, zones, strict=True):
            node = one([node for node in nodes if cidr in node.label.split("\n")], f"{tier} subnet {cidr}")
            assert zone in node.label.split("\n"), f"{cidr} should be drawn in {zone}: {node.label!r}"
            assert re.search(rf'^ +"{re.escape(node.id)}" \[label="[^"]*\\n{re.escape(cidr)}\\n', text, re.MULTILINE)


def test_services_sit_in_the_tier_their_subnets_belong_to(env_diagram):
    env, _, diagram, _ = env_diagram
    assert {"load_balancer", "nat"} <= kinds_in(diagram, "tier_public")
    assert "ecs_service" in kinds_in(diagram, "tier_app")
    data = {"database", "cache"} if env.features.cache else {"database"}
    assert data <= kinds_in(diagram, "tier_data")
    assert {"cloudfront", "site_bucket"} <= kinds_in(diagram, "edge")
    assert ("waf" in kinds_in(diagram, "edge")) is env.features.waf
    assert "subnet" not in kinds_in(diagram, "edge") | kinds_in(diagram, "observability")


def test_the_data_tier_has_no_route_out_and_says_so(env_diagram):
    _, _, diagram, _ = env_diagram
    data = diagram.cluster("tier_data")
    assert "no route to the internet" in data.label
    for node in data.nodes:
        assert not diagram.edges_from(node.id, "route"), f"{node.id} routes somewhere"


# -- traffic path (SPEC 4.1, 4.3, 4.4) ------------------------------------------------------------


def test_users_reach_cloudfront_which_reads_the_private_site_bucket(env_diagram):
    env, _, diagram, text = env_diagram
    cloudfront = one(diagram.nodes_of("cloudfront"), "distribution")
    bucket = one(diagram.nodes_of("site_bucket"), "site bucket")
    assert_edge(diagram, text, USERS, cloudfront.id, "HTTPS")
    assert_edge(diagram, text, cloudfront.id, bucket.id, "OAC")
    replicas = diagram.nodes_of("site_replica")
    assert len(replicas) == (1 if env.dr else 0), "with [dr], the replica is the failover origin"
    for replica in replicas:
        assert_edge(diagram, text, cloudfront.id, replica.id, "on failure")


def test_users_reach_the_api_through_the_load_balancer_to_the_database(env_diagram):
    env, _, diagram, text = env_diagram
    alb = one(diagram.nodes_of("load_balancer"), "load balancer")
    service = one(diagram.nodes_of("ecs_service"), "ECS service")
    database = one(diagram.nodes_of("database"), "Aurora cluster")
    assert_edge(diagram, text, USERS, alb.id, f"HTTPS :{HTTPS_PORT}")
    assert_edge(diagram, text, alb.id, service.id, f":{env.api.container_port}")
    assert_edge(diagram, text, service.id, database.id, f":{POSTGRES_PORT}")


def test_application_subnets_leave_through_a_nat_gateway_to_the_internet(env_diagram):
    _, _, diagram, text = env_diagram
    nat_ids = {node.id for node in diagram.nodes_of("nat")}
    for subnet in [node for node in diagram.cluster("tier_app").nodes if node.kind == "subnet"]:
        routes = diagram.edges_from(subnet.id, "route")
        assert [edge.target for edge in routes if edge.target in nat_ids], f"{subnet.label} has no NAT route"
        for edge in routes:
            assert_edge(diagram, text, subnet.id, edge.target, "0.0.0.0/0")
    for nat in nat_ids:
        assert_edge(diagram, text, nat, INTERNET)


def test_nat_gateways_follow_the_configured_mode(env_diagram):
    env, stack, diagram, _ = env_diagram
    per_az = env.network.nat_gateways is NatMode.PER_AZ
    expected = env.network.az_count if per_az else 1
    nats = [node for node in diagram.cluster("tier_public").nodes if node.kind == "nat"]
    assert len(nats) == expected == len(resources_of(stack, "aws_nat_gateway"))
    app_subnets = [node for node in diagram.cluster("tier_app").nodes if node.kind == "subnet"]
    targets = {edge.target for subnet in app_subnets for edge in diagram.edges_from(subnet.id, "route")}
    assert len(targets) == expected, "each application subnet should use its own NAT only in per_az mode"


def test_production_shows_one_nat_gateway_per_zone(project, diagrams):
    """SPEC 2: production runs one NAT gateway per AZ, in 2 AZs by default."""
    env = project.environment("production")
    assert env.network.nat_gateways is NatMode.PER_AZ and env.network.az_count == 2
    nats = diagrams["production"].nodes_of("nat")
    assert len(nats) == env.network.az_count
    zones = env.network.availability_zones(env.region)
    placed = {edge.target for nat in nats for edge in diagrams["production"].edges_from(nat.id, "placement")}
    subnet_zones = {node.label.split("\n")[-1] for node in diagrams["production"].all_nodes() if node.id in placed}
    assert subnet_zones == set(zones), "the NAT gateways should sit in different zones"


def test_waf_inspects_cloudfront_and_the_load_balancer_when_enabled(env_diagram):
    env, _, diagram, _ = env_diagram
    protected = {edge.target for waf in diagram.nodes_of("waf") for edge in diagram.edges_from(waf.id, "protects")}
    expected = {one(diagram.nodes_of("cloudfront"), "distribution").id,
                one(diagram.nodes_of("load_balancer"), "load balancer").id} if env.features.waf else set()
    assert protected == expected


def test_every_alarm_notifies_a_topic_and_observability_holds_them_all(env_diagram):
    _, stack, diagram, _ = env_diagram
    kinds = {"alarm": "aws_cloudwatch_metric_alarm", "topic": "aws_sns_topic", "dashboard": "aws_cloudwatch_dashboard"}
    cluster = diagram.cluster("observability")
    for kind, resource_type in kinds.items():
        assert len([node for node in cluster.nodes if node.kind == kind]) == len(resources_of(stack, resource_type))
    topics = {node.id for node in cluster.nodes if node.kind == "topic"}
    for alarm in [node for node in cluster.nodes if node.kind == "alarm"]:
        assert {edge.target for edge in diagram.edges_from(alarm.id, "notifies")} & topics, alarm.label


def test_the_audit_cluster_shows_the_trail_and_where_it_delivers(project, diagrams):
    """The trail is account-level: drawn in the baseline that owns it, in no environment."""
    for env in project.environments:
        assert not diagrams[env.name].nodes_of("trail")
    for baseline in project.baselines:
        diagram = diagrams[baseline.stack_name]
        if not baseline.cloudtrail:
            assert not diagram.nodes_of("trail")
            continue
        trail = one(diagram.nodes_of("trail"), "trail")
        delivered = {edge.target for edge in diagram.edges_from(trail.id, "delivers")}
        assert {node.id for node in diagram.cluster("audit").nodes if node.kind != "trail"} == delivered != set()


def test_the_compliance_cluster_shows_recorder_delivery_rules_and_notification(project, stacks, diagrams):
    for baseline in project.baselines:
        diagram, stack = diagrams[baseline.stack_name], stacks[baseline.stack_name]
        if not baseline.config:
            assert not diagram.nodes_of("recorder")
            continue
        recorder = one(diagram.nodes_of("recorder"), "recorder")
        assert ("global types" in recorder.label) is baseline.record_global_resources
        assert len(diagram.edges_from(recorder.id, "delivers")) == 1
        rules = one(diagram.nodes_of("rules"), "rules")
        assert rules.label.startswith(f"{len(resources_of(stack, 'aws_config_config_rule'))} AWS managed rules")
        (event_rule,) = [edge.target for edge in diagram.edges_from(rules.id, "notifies")]
        topics = [edge.target for edge in diagram.edges_from(event_rule, "notifies")]
        assert [node.id for node in diagram.nodes_of("topic")] == topics != []


def test_budget_anomaly_alerts_and_tracing_are_drawn(project, stacks, diagrams):
    for env in project.environments:
        diagram, stack = diagrams[env.name], stacks[env.name]
        budgets = diagram.nodes_of("budget")
        assert len(budgets) == len(resources_of(stack, "aws_budgets_budget")) + len(
            resources_of(stack, "aws_ce_anomaly_subscription")) == 2
        warning = next(node.id for node in diagram.nodes_of("topic")
                       if node.label.endswith(env.resource_name("warning")))
        for node in budgets:
            assert [edge.target for edge in diagram.edges_from(node.id, "notifies")] == [warning]
        budget = next(node for node in budgets if node.id.startswith("aws_budgets_budget."))
        assert f"{env.cost.budget_monthly_usd} USD/month" in budget.label
        xray = diagram.nodes_of("xray")
        assert len(xray) == int(env.features.tracing)
        for node in xray:
            assert f"{env.tracing.sampling_rate:.0%}" in node.label
            service = one(diagram.nodes_of("ecs_service"), "ECS service")
            assert [edge.target for edge in diagram.edges_from(service.id, "delivers")] == [node.id]
    for baseline in project.baselines:
        assert len(diagrams[baseline.stack_name].nodes_of("xray")) == int(baseline.xray_encryption)


def test_an_optional_cache_is_drawn_in_the_data_tier_behind_the_api(stacks):
    """No shipped environment enables the cache, so add one to a copy of dev the way modules/database.py and
    modules/network.py write it: a subnet group on the data subnets and a group admitting the API's group."""
    body = copy.deepcopy(stacks["dev"])
    resources = body["resource"]
    data_subnets = sorted(name for name, subnet in resources["aws_subnet"].items() if subnet["tags"]["Tier"] == "data")
    api_group = next(name for name, group in resources["aws_security_group"].items() if group["name"].endswith("-api"))
    resources["aws_elasticache_subnet_group"] = {"cache-subnets": {
        "name": "webapp-dev-cache", "subnet_ids": [f"${{aws_subnet.{name}.id}}" for name in data_subnets]}}
    resources["aws_security_group"]["cache-sg"] = {"name": "webapp-dev-cache", "vpc_id": "${aws_vpc.x.id}"}
    resources["aws_vpc_security_group_ingress_rule"]["cache-from-api"] = {
        "from_port": CACHE_PORT, "to_port": CACHE_PORT, "ip_protocol": "tcp",
        "security_group_id": "${aws_security_group.cache-sg.id}",
        "referenced_security_group_id": f"${{aws_security_group.{api_group}.id}}"}
    resources["aws_elasticache_replication_group"] = {"cache": {
        "replication_group_id": "webapp-dev-cache", "engine": "redis", "port": CACHE_PORT, "num_cache_clusters": 2,
        "transit_encryption_enabled": True, "security_group_ids": ["${aws_security_group.cache-sg.id}"],
        "subnet_group_name": "${aws_elasticache_subnet_group.cache-subnets.name}"}}
    diagram = build_diagram("dev", body)
    cache = one(diagram.nodes_of("cache"), "cache")
    assert cache in diagram.cluster("tier_data").nodes
    service = one(diagram.nodes_of("ecs_service"), "ECS service")
    assert_edge(diagram, render_dot(diagram), service.id, cache.id, f":{CACHE_PORT}")


# -- determinism, files, CLI ----------------------------------------------------------------------


def _reversed_resources(body: dict) -> dict:
    """The same stack with every resource table in reverse order (JSON object order is not meaningful)."""
    copied = copy.deepcopy(body)
    copied["resource"] = {kind: dict(reversed(list(items.items())))
                          for kind, items in reversed(list(copied["resource"].items()))}
    return copied


def test_output_does_not_depend_on_the_order_of_the_json(stacks, dot_texts):
    for name, text in dot_texts.items():
        build = build_baseline_diagram if name in baseline_stacks(stacks) else build_diagram
        assert render_dot(build(name, _reversed_resources(stacks[name]))) == text, name


def test_checked_in_diagrams_are_up_to_date(dot_texts):
    stale = [name for name, text in dot_texts.items()
             if not dot_path(DOCS, name).is_file() or dot_path(DOCS, name).read_text(encoding="utf-8") != text]
    paths = ", ".join(f"docs/{dot_path(DOCS, name).name}" for name in stale)
    assert not stale, f"{paths}: missing or stale; regenerate: {REGENERATE}"
    extra = {path.name for path in DOCS.glob("architecture-*.dot")} - {dot_path(DOCS, name).name for name in dot_texts}
    assert not extra, f"{sorted(extra)} belong to no environment; regenerate: {REGENERATE}"


def test_the_cli_writes_what_generate_returns_and_refuses_a_missing_synth_dir(synth_dir, stacks, tmp_path, capsys):
    out = tmp_path / "docs"
    out.mkdir()
    (out / "architecture-gone.dot").write_text("stale")
    assert main(["--synth-dir", str(synth_dir), "--out", str(out), "--no-svg"]) == 0
    expected = generate(stacks)
    assert {path.name: path.read_text() for path in out.iterdir()} == {
        dot_path(out, name).name: text for name, text in expected.items()}
    assert main(["--synth-dir", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "synthesize first" in capsys.readouterr().err


def test_no_diagram_mentions_a_path_of_this_machine(synth_dir, dot_texts):
    """The files are compared byte for byte in every checkout, so nothing local may leak in."""
    for name, text in dot_texts.items():
        assert str(synth_dir) not in text and str(ROOT) not in text, name


def test_the_cli_refuses_a_partial_synthesis_and_removes_nothing(synth_dir, tmp_path, capsys):
    """After `python main.py dev` the other environments' diagrams must survive a `diagram.py` run."""
    partial = tmp_path / "cdktf.out"
    shutil.copytree(synth_dir, partial)
    manifest = json.loads((partial / "manifest.json").read_text())
    manifest["stacks"] = {name: entry for name, entry in manifest["stacks"].items() if name == "dev"}
    (partial / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "docs"
    out.mkdir()
    (out / "architecture-staging.dot").write_text("kept")
    assert main(["--synth-dir", str(partial), "--out", str(out), "--no-svg"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {partial} lacks ") and "synthesize every stack first" in error, error
    assert [path.name for path in out.iterdir()] == ["architecture-staging.dot"]
