"""deploy/ecs/fraudstream.yaml: the properties that would quietly weaken production if they changed.

cfn-lint (in CI) checks that the template is valid CloudFormation; these tests check what it
cannot know: our security rules, that alarms watch metrics the consumer really publishes, that the
stop timeout covers the KCL's graceful shutdown, and that docs/iam.md matches the roles.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from consumer.cli import build_parser
from consumer.settings.keys import KNOWN_KEYS
from consumer.worker.daemon import parse_properties, render_properties

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "ecs" / "fraudstream.yaml"
FARGATE_MAX_STOP_TIMEOUT_S = 120
# Actions AWS offers no resource type for: "*" is the only resource they accept.
STAR_RESOURCE_ACTIONS = {"cloudwatch:PutMetricData", "ecr:GetAuthorizationToken"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(TEMPLATE))
    return loaded


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def props(template: dict[str, Any], name: str) -> dict[str, Any]:
    value: dict[str, Any] = template["Resources"][name]["Properties"]
    return value


def referenced(value: Any) -> str | None:
    """The logical id behind a Ref or GetAtt, else None."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return str(target[0] if isinstance(target, list) else target.split(".")[0])
    return None


def branches(item: Any) -> Iterator[Any]:
    """A value, or both branches of an Fn::If (AWS::NoValue dropped)."""
    if isinstance(item, dict) and "Fn::If" in item:
        for branch in item["Fn::If"][1:]:
            yield from branches(branch)
    elif not (isinstance(item, dict) and item.get("Ref") == "AWS::NoValue"):
        yield item


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in role["Properties"].get("Policies", []):
        for item in policy["PolicyDocument"]["Statement"]:
            found.extend(branches(item))
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resource_text(resource: Any) -> str:
    if isinstance(resource, str):
        return resource
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    return json.dumps(resource)


def contract_metric_names() -> set[str]:
    text = (REPO / "docs" / "metrics.md").read_text()
    return set(re.findall(r"^\| ([A-Z][A-Za-z0-9]+) \|", text, re.M))


def worker_container(template: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = props(template, "TaskDefinition")["ContainerDefinitions"][0]
    return container


# --- S3 -------------------------------------------------------------------------------------


def test_the_buckets_block_public_access_and_encrypt_with_our_kms_key(
    template: dict[str, Any],
) -> None:
    """The data bucket and the Athena results bucket (which holds query results: data too)."""
    buckets = resources_of(template, "AWS::S3::Bucket")
    assert set(buckets) == {"Bucket", "AnalyticsResultsBucket"}
    for bucket in buckets.values():
        block = bucket["Properties"]["PublicAccessBlockConfiguration"]
        assert block == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        (rule,) = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        default = rule["ServerSideEncryptionByDefault"]
        assert default["SSEAlgorithm"] == "aws:kms"
        key = referenced(default["KMSMasterKeyID"])
        assert key is not None and template["Resources"][key]["Type"] == "AWS::KMS::Key"


def test_the_bucket_policies_deny_requests_without_tls(template: dict[str, Any]) -> None:
    policies = resources_of(template, "AWS::S3::BucketPolicy").values()
    assert sorted(str(referenced(p["Properties"]["Bucket"])) for p in policies) == [
        "AnalyticsResultsBucket",
        "Bucket",
    ]
    for policy in policies:
        denies = [
            s
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if s["Effect"] == "Deny" and s["Principal"] == "*" and s["Action"] in ("s3:*", ["s3:*"])
        ]
        assert any(s["Condition"]["Bool"]["aws:SecureTransport"] == "false" for s in denies)


def test_objects_move_to_glacier_after_180_days_and_expire_after_the_retention_parameter(
    template: dict[str, Any],
) -> None:
    (rule,) = props(template, "Bucket")["LifecycleConfiguration"]["Rules"]
    assert rule["Transitions"] == [{"StorageClass": "GLACIER", "TransitionInDays": 180}]
    assert rule["ExpirationInDays"] == {"Ref": "RetentionDays"}
    assert template["Parameters"]["RetentionDays"]["MinValue"] > 180


# --- Redis, secrets, network ------------------------------------------------------------------


def test_redis_has_tls_at_rest_encryption_and_an_auth_token_from_secrets_manager(
    template: dict[str, Any],
) -> None:
    (redis,) = resources_of(template, "AWS::ElastiCache::ReplicationGroup").values()
    p = redis["Properties"]
    assert p["TransitEncryptionEnabled"] is True
    assert p.get("TransitEncryptionMode", "required") == "required"
    assert p["AtRestEncryptionEnabled"] is True
    match = re.fullmatch(
        r"\{\{resolve:secretsmanager:\$\{(\w+)\}:SecretString:token\}\}", p["AuthToken"]["Fn::Sub"]
    )
    assert match, p["AuthToken"]
    secret = template["Resources"][match.group(1)]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert "GenerateSecretString" in secret["Properties"], "the token must be generated, not typed"


def test_the_worker_gets_redis_url_as_an_ecs_secret_over_tls(template: dict[str, Any]) -> None:
    container = worker_container(template)
    environment = {e["Name"] for item in container["Environment"] for e in branches(item)}
    assert "REDIS_URL" not in environment
    (secret_ref,) = [s["ValueFrom"] for s in container["Secrets"] if s["Name"] == "REDIS_URL"]
    secret = template["Resources"][referenced(secret_ref) or ""]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["SecretString"]["Fn::Sub"].startswith("rediss://")


def test_redis_accepts_connections_only_from_the_worker_and_api_tasks(
    template: dict[str, Any],
) -> None:
    (redis,) = resources_of(template, "AWS::ElastiCache::ReplicationGroup").values()
    (group,) = [referenced(g) for g in redis["Properties"]["SecurityGroupIds"]]
    inline = template["Resources"][group]["Properties"].get("SecurityGroupIngress", [])
    separate = [
        r["Properties"]
        for r in resources_of(template, "AWS::EC2::SecurityGroupIngress").values()
        if referenced(r["Properties"]["GroupId"]) == group
    ]
    rules = inline + separate
    assert rules, "Redis has no ingress at all"
    for rule in rules:
        assert "CidrIp" not in rule and "CidrIpv6" not in rule
    sources = sorted(str(referenced(rule["SourceSecurityGroupId"])) for rule in rules)
    assert sources == ["ApiTaskSecurityGroup", "TaskSecurityGroup"]
    for service_name, group_name in (
        ("Service", "TaskSecurityGroup"),
        ("ApiService", "ApiTaskSecurityGroup"),
    ):
        service = props(template, service_name)["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert [referenced(g) for g in service["SecurityGroups"]] == [group_name]
    # The ingest task and the scaler reach no Redis.
    for group_name in ("IngestSecurityGroup", "ScalerSecurityGroup"):
        egress = props(template, group_name)["SecurityGroupEgress"]
        assert [(e["FromPort"], e["ToPort"]) for e in egress] == [(443, 443)], group_name


def test_sns_topics_are_encrypted(template: dict[str, Any]) -> None:
    for name, topic in resources_of(template, "AWS::SNS::Topic").items():
        key = referenced(topic["Properties"].get("KmsMasterKeyId"))
        assert key and template["Resources"][key]["Type"] == "AWS::KMS::Key", name


# --- IAM ------------------------------------------------------------------------------------


def test_no_role_has_a_wildcard_action(template: dict[str, Any]) -> None:
    for name, role in resources_of(template, "AWS::IAM::Role").items():
        for statement in statements(role):
            for action in as_list(statement["Action"]):
                assert "*" not in action, f"{name}: {action}"


def test_star_resources_only_where_aws_requires_them(template: dict[str, Any]) -> None:
    for name, role in resources_of(template, "AWS::IAM::Role").items():
        for statement in statements(role):
            if "*" not in as_list(statement["Resource"]):
                continue
            actions = set(as_list(statement["Action"]))
            assert actions <= STAR_RESOURCE_ACTIONS, f"{name}: {actions} on *"
            if "cloudwatch:PutMetricData" in actions:
                namespaces = statement["Condition"]["StringEquals"]["cloudwatch:namespace"]
                assert namespaces_by_mode(namespaces) == {
                    # EMF: our metrics are log lines; only the KCL calls PutMetricData.
                    "emf": [{"Ref": "ApplicationName"}],
                    "api": [{"Ref": "MetricsNamespace"}, {"Ref": "ApplicationName"}],
                }, name


def namespaces_by_mode(namespaces: Any) -> dict[str, list[Any]]:
    """The PutMetricData namespaces allowed under each MetricsMode."""
    condition, when_api, otherwise = namespaces["Fn::If"]
    assert condition == "MetricsByApi"
    return {"api": as_list(when_api), "emf": as_list(otherwise)}


def test_metrics_are_emf_log_lines_shipped_by_the_awslogs_driver(
    template: dict[str, Any],
) -> None:
    """CloudWatch Logs extracts EMF only from lines that reach it: the awslogs driver."""
    parameter = template["Parameters"]["MetricsMode"]
    assert parameter["Default"] == "emf" and sorted(parameter["AllowedValues"]) == ["api", "emf"]
    assert template["Conditions"]["MetricsByApi"] == {"Fn::Equals": [{"Ref": "MetricsMode"}, "api"]}
    container = worker_container(template)
    environment = {e["Name"]: e["Value"] for e in container["Environment"] if "Name" in e}
    assert environment["FRAUD_METRICS_MODE"] == {"Ref": "MetricsMode"}
    assert environment["FRAUD_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    logging = container["LogConfiguration"]
    assert logging["LogDriver"] == "awslogs"
    assert logging["Options"]["awslogs-group"] == {"Ref": "WorkerLogGroup"}


def test_task_role_resources_are_the_stream_tables_bucket_prefixes_topic_and_key(
    template: dict[str, Any],
) -> None:
    allowed_wildcards = (
        "/${S3Prefix}flagged/*",
        "/${S3Prefix}shadow/*",
        "/${S3Prefix}decisions/*",
        "/${S3Prefix}dead-letter/*",
        "/${S3Prefix}labels-rejected/*",
        "/${S3Prefix}labels/*",
        ":table/${ApplicationName}/index/*",
        "/consumer/${ApplicationName}:*",
    )
    tables: set[str] = set()
    for statement in statements(template["Resources"]["TaskRole"]):
        for resource in as_list(statement["Resource"]):
            text = resource_text(resource)
            if text == "*":
                continue
            if "*" in text:
                assert text.endswith(allowed_wildcards), text
            if ":dynamodb:" in text:
                tables.add(text.split(":table/")[1])
            if text == "${Bucket.Arn}":
                # Listing: only the labels prefix (test_labels_are_listed_only_under_their_prefix).
                assert statement["Action"] == "s3:ListBucket", text
                continue
            if text.startswith("${Bucket.Arn}"):
                # Writes under the output prefixes; reads: the rule set's key, the model's files;
                # both: the rule set's last-good record
                # (tests/unit/reload/test_ruleset_last_good.py).
                expected = "s3:GetObject" if text in BUCKET_READS else "s3:PutObject"
                if text == LAST_GOOD_RECORD:
                    assert statement["Action"] in ("s3:GetObject", "s3:PutObject"), text
                else:
                    assert statement["Action"] == expected, text
    assert tables == {
        "${ApplicationName}",
        "${ApplicationName}/index/*",
        "${ApplicationName}-WorkerMetricStats",
        "${ApplicationName}-CoordinatorState",
    }


LAST_GOOD_RECORD = "${Bucket.Arn}/${RuleSetKey}.last-good.json"
BUCKET_READS = {
    "${Bucket.Arn}/${S3Prefix}labels/*",
    "${Bucket.Arn}/${RuleSetKey}",
    "${Bucket.Arn}/${ModelPrefix}model.txt",
    "${Bucket.Arn}/${ModelPrefix}features.json",
}


def test_the_model_is_read_from_its_two_objects_only_and_only_when_configured(
    template: dict[str, Any],
) -> None:
    """ModelPrefix: s3:GetObject on its model.txt and features.json (no wildcard, no listing),
    and FRAUD_MODEL_DIR names that prefix; both only under HasModel."""
    prefix = template["Parameters"]["ModelPrefix"]
    assert prefix["Default"] == ""
    pattern = re.compile(prefix["AllowedPattern"])
    assert pattern.fullmatch("") and pattern.fullmatch("models/live/")
    for bad in ("models/live", "models/*/", "*/", "models/live/model.txt"):
        assert not pattern.fullmatch(bad), bad  # no wildcard, always a whole prefix
    conditional = [
        item
        for policy in props(template, "TaskRole")["Policies"]
        for item in policy["PolicyDocument"]["Statement"]
        if isinstance(item, dict) and "Fn::If" in item
    ]
    model = [item["Fn::If"] for item in conditional if item["Fn::If"][0] == "HasModel"]
    assert len(model) == 1 and model[0][2] == {"Ref": "AWS::NoValue"}
    grant = model[0][1]
    assert grant["Effect"] == "Allow" and grant["Action"] == "s3:GetObject"
    assert sorted(resource_text(r) for r in as_list(grant["Resource"])) == [
        "${Bucket.Arn}/${ModelPrefix}features.json",
        "${Bucket.Arn}/${ModelPrefix}model.txt",
    ]
    granted_elsewhere = [
        resource_text(r)
        for statement in statements(template["Resources"]["TaskRole"])
        if statement is not grant
        for r in as_list(statement["Resource"])
    ]
    assert not any("ModelPrefix" in text for text in granted_elsewhere)
    environment = [
        item["Fn::If"]
        for item in worker_container(template)["Environment"]
        if isinstance(item, dict) and "Fn::If" in item and item["Fn::If"][0] == "HasModel"
    ]
    assert len(environment) == 1
    assert environment[0][1]["Name"] == "FRAUD_MODEL_DIR"
    assert resource_text(environment[0][1]["Value"]) == "s3://${Bucket}/${ModelPrefix}"
    assert template["Conditions"]["HasModel"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ModelPrefix"}, ""]}]
    }


def test_labels_are_listed_only_under_their_prefix(template: dict[str, Any]) -> None:
    """The label pickup (docs/labels.md) lists the bucket only under <prefix>labels/: the one
    s3:ListBucket grant carries that s3:prefix condition; nothing may delete a label file."""
    listing = [
        s
        for s in statements(template["Resources"]["TaskRole"])
        if "s3:ListBucket" in as_list(s["Action"])
    ]
    assert len(listing) == 1
    assert as_list(listing[0]["Action"]) == ["s3:ListBucket"]
    condition = listing[0]["Condition"]["StringLike"]["s3:prefix"]
    assert resource_text(condition) == "${S3Prefix}labels/*"
    granted = {
        a for s in statements(template["Resources"]["TaskRole"]) for a in as_list(s["Action"])
    }
    assert "s3:DeleteObject" not in granted


def iam_doc_actions() -> dict[str, set[str]]:
    """docs/iam.md: the actions of each role section, keyed by the role's logical id."""
    sections: dict[str, set[str]] = {}
    current: str | None = None
    for line in (REPO / "docs" / "iam.md").read_text().splitlines():
        heading = re.match(r"^## .*\(`(\w+)`\)", line)
        if heading:
            current = heading.group(1)
            sections[current] = set()
        elif line.startswith("## "):
            current = None
        elif current and line.startswith("| `"):
            first_cell = line.split("|")[1]
            sections[current] |= set(re.findall(r"`([a-z0-9-]+:[A-Za-z0-9]+)`", first_cell))
    return sections


def test_docs_iam_lists_exactly_the_actions_of_each_role(template: dict[str, Any]) -> None:
    """Roles and managed policies (the analysts' AnalyticsReadPolicy) alike."""
    documented = iam_doc_actions()
    roles = resources_of(template, "AWS::IAM::Role")
    managed = resources_of(template, "AWS::IAM::ManagedPolicy")
    assert set(documented) == set(roles) | set(managed)
    for name, role in roles.items():
        granted = {a for s in statements(role) for a in as_list(s["Action"])}
        assert documented[name] == granted, name
    for name, policy in managed.items():
        document = policy["Properties"]["PolicyDocument"]["Statement"]
        granted = {a for item in document for s in branches(item) for a in as_list(s["Action"])}
        assert documented[name] == granted, name


# --- Metrics, alarms, dashboard ---------------------------------------------------------------


def test_alarms_watch_only_metrics_the_consumer_publishes(template: dict[str, Any]) -> None:
    names = contract_metric_names()
    assert {"RecordsJudged", "ProcessingErrors", "DeadLetters", "AlertsFailed"} <= names
    ours = 0
    for alarm_name, alarm in resources_of(template, "AWS::CloudWatch::Alarm").items():
        p = alarm["Properties"]
        metrics = [(p.get("Namespace"), p.get("MetricName"))] + [
            (m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"])
            for m in p.get("Metrics", [])
            if "MetricStat" in m
        ]
        for namespace, metric in metrics:
            if namespace == {"Ref": "MetricsNamespace"}:
                ours += 1
                assert metric in names, f"{alarm_name}: {metric} is not in the metrics contract"
        assert [referenced(a) for a in p["AlarmActions"]] == ["OpsTopic"], alarm_name
    assert ours >= 5


def test_the_required_alarms_exist(template: dict[str, Any]) -> None:
    watched: set[str] = set()
    for alarm in resources_of(template, "AWS::CloudWatch::Alarm").values():
        p = alarm["Properties"]
        watched.add(p.get("MetricName", ""))
        watched |= {
            m["MetricStat"]["Metric"]["MetricName"]
            for m in p.get("Metrics", [])
            if "MetricStat" in m
        }
    assert {
        "GetRecords.IteratorAgeMilliseconds",
        "ProcessingErrors",
        "DeadLetters",
        "AlertsFailed",
        "RecordsJudged",
        "IncomingRecords",
        "RuleSetLastGoodInUse",
    } <= watched


def dashboard_metrics(body: str) -> list[tuple[str, str]]:
    """(namespace, metric) of every dashboard metric row and SEARCH, `.`/`...` resolved."""
    text = re.sub(r"\$\{([^}]+)\}", lambda m: "OURS" if m.group(1) == "Ns" else "1", body)
    found: list[tuple[str, str]] = []
    for widget in json.loads(text)["widgets"]:
        previous: list[str] = []
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], dict):
                search = row[0]["expression"]
                namespace = re.search(r"\{([^,}]+)", search)
                metric = re.search(r'MetricName="(\w+)"', search)
                assert namespace and metric, search
                found.append((namespace.group(1), metric.group(1)))
                continue
            names = [x for x in row if isinstance(x, str)]
            if names[:1] == ["..."]:
                names = previous
            else:
                names = [
                    p if x == "." else x for x, p in zip(names, previous + names, strict=False)
                ]
            previous = names
            found.append((names[0], names[1]))
    return found


def test_the_dashboard_names_only_published_metrics(template: dict[str, Any]) -> None:
    body = props(template, "Dashboard")["DashboardBody"]["Fn::Sub"][0]
    ours = {metric for namespace, metric in dashboard_metrics(body) if namespace == "OURS"}
    assert len(ours) >= 12
    assert ours <= contract_metric_names(), ours - contract_metric_names()


# --- ECS ------------------------------------------------------------------------------------


def test_stop_timeout_covers_the_kcl_graceful_shutdown(template: dict[str, Any]) -> None:
    properties = parse_properties((REPO / "properties" / "fraudstream.properties").read_text())
    grace_s = int(properties["shutdownGraceMillis"]) / 1000
    stop_timeout = worker_container(template)["StopTimeout"]
    assert grace_s < stop_timeout <= FARGATE_MAX_STOP_TIMEOUT_S


def test_deployments_roll_back_on_the_circuit_breaker(template: dict[str, Any]) -> None:
    breaker = props(template, "Service")["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
    assert breaker == {"Enable": True, "Rollback": True}


def test_a_task_holds_no_more_leases_than_it_is_sized_for(template: dict[str, Any]) -> None:
    env = {
        e["Name"]: e["Value"]
        for item in worker_container(template)["Environment"]
        for e in branches(item)
    }
    assert env["KCL_maxLeasesForWorker"] == {"Ref": "ShardsPerTask"}
    assert "REDIS_URL" not in env
    assert not any(re.search(r"PASSWORD|SECRET|TOKEN", k) for k in env)


def test_the_default_task_memory_fits_the_sizing_budget(template: dict[str, Any]) -> None:
    """deploy/ecs/README.md "Sizing": a 10,000-record batch on every leased shard must fit."""
    params = template["Parameters"]
    shards = params["ShardsPerTask"]["Default"]
    heap = params["JvmHeapMb"]["Default"]
    # Measured: 4 shards each serialising a 10,000 x 1 KiB batch with one more prefetched need
    # 384 MiB of heap; the KCL's own state and a GetRecords being parsed add the rest.
    assert heap >= 128 + 112 * shards
    # Per shard: the processor (384 MiB) and its alert process (FRAUD_ALERT_PROCESS, 96 MiB).
    jvm_non_heap_mb, per_processor_mb, per_alert_process_mb = 160, 384, 96
    needed = heap + jvm_non_heap_mb + shards * (per_processor_mb + per_alert_process_mb)
    assert needed <= params["TaskMemory"]["Default"], needed


def test_the_scaler_runs_ops_scale_with_every_bound(template: dict[str, Any]) -> None:
    (container,) = props(template, "ScalerTaskDefinition")["ContainerDefinitions"]
    assert container["EntryPoint"] == ["fraudstream"]
    command = container["Command"]
    assert command[:2] == ["ops", "scale"]
    flags = {command[i]: command[i + 1] for i in range(2, len(command), 2)}
    assert flags == {
        "--stream": {"Ref": "Stream"},
        "--cluster": {"Ref": "Cluster"},
        "--service": {"Fn::GetAtt": ["Service", "Name"]},
        "--shards-per-task": {"Ref": "ShardsPerTask"},
        "--min": {"Ref": "MinTasks"},
        "--max": {"Ref": "MaxTasks"},
    }
    scaler_role = template["Resources"]["ScalerTaskRole"]
    for statement in statements(scaler_role):
        if any(a.startswith("ecs:") for a in as_list(statement["Action"])):
            assert statement["Resource"] == {"Ref": "Service"}


def test_the_log_group_keeps_logs_for_a_bounded_time(template: dict[str, Any]) -> None:
    for name, group in resources_of(template, "AWS::Logs::LogGroup").items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name


def test_a_start_timestamp_is_rendered_after_the_base_initial_position() -> None:
    """The KCL applies properties in file order (the last one wins; checked against 3.1.3), so
    StartAtTimestamp's KCL_initialPositionInStreamExtended must follow initialPositionInStream."""
    env = {"FRAUD_STREAM": "s", "KCL_initialPositionInStreamExtended": "1795500000"}
    keys = list(render_properties(env, "worker-1"))
    assert keys.index("initialPositionInStreamExtended") > keys.index("initialPositionInStream")


def test_the_read_only_worker_writes_its_properties_to_a_volume_the_image_owns(
    template: dict[str, Any],
) -> None:
    """Read-only root: the rendered KCL properties need a mounted path, and the image must
    declare it a VOLUME, or ECS mounts it root-owned and the non-root worker cannot write."""
    container = worker_container(template)
    assert container["ReadonlyRootFilesystem"] is True
    dockerfile = (REPO / "Dockerfile").read_text()
    out = re.search(r"FRAUD_PROPERTIES_OUT=(\S+)", dockerfile)
    assert out, "the Dockerfile sets FRAUD_PROPERTIES_OUT"
    mounts = [m["ContainerPath"] for m in container["MountPoints"]]
    (mount,) = [m for m in mounts if out.group(1).startswith(m.rstrip("/") + "/")]
    assert re.search(rf'^VOLUME \["{re.escape(mount)}"\]', dockerfile, re.M)


def test_the_worker_runs_under_an_init_process_that_reaps_orphans(template: dict[str, Any]) -> None:
    """Each processor has an alert process (FRAUD_ALERT_PROCESS); if a processor dies first, its
    orphan must be reaped by PID 1, which the JVM does not do for processes it did not start."""
    assert worker_container(template)["LinuxParameters"]["InitProcessEnabled"] is True


# --- The scoring API service (docs/api.md) ----------------------------------------------------


def api_container(template: dict[str, Any]) -> dict[str, Any]:
    (container,) = props(template, "ApiTaskDefinition")["ContainerDefinitions"]
    assert isinstance(container, dict)
    return container


def environment_of(container: dict[str, Any]) -> dict[str, Any]:
    """A container's environment, both branches of every Fn::If."""
    return {e["Name"]: e["Value"] for item in container["Environment"] for e in branches(item)}


def test_the_api_runs_serve_on_the_port_its_load_balancer_targets(template: dict[str, Any]) -> None:
    container = api_container(template)
    assert container["EntryPoint"] == ["fraudstream"]
    assert container["Command"][0] == "serve"
    port = int(container["Command"][container["Command"].index("--port") + 1])
    assert [m["ContainerPort"] for m in container["PortMappings"]] == [port]
    group = props(template, "ApiTargetGroup")
    assert group["Port"] == port and group["TargetType"] == "ip"
    # Readiness (Redis reachable, rule set loaded) takes a task out of rotation; liveness is
    # the container's own check, so a Redis outage does not restart tasks in a loop.
    assert group["HealthCheckPath"] == "/readyz"
    assert "/healthz" in container["HealthCheck"]["Command"][-1]
    (binding,) = props(template, "ApiService")["LoadBalancers"]
    assert binding["ContainerName"] == container["Name"] and binding["ContainerPort"] == port


def test_the_api_is_internal_and_reached_only_from_the_clients_cidr(
    template: dict[str, Any],
) -> None:
    assert props(template, "ApiLoadBalancer")["Scheme"] == "internal"
    (ingress,) = props(template, "ApiLoadBalancerSecurityGroup")["SecurityGroupIngress"]
    assert ingress["CidrIp"] == {"Ref": "ApiClientCidr"}
    task_ingress = [
        r["Properties"]
        for r in resources_of(template, "AWS::EC2::SecurityGroupIngress").values()
        if referenced(r["Properties"]["GroupId"]) == "ApiTaskSecurityGroup"
    ]
    assert [referenced(r["SourceSecurityGroupId"]) for r in task_ingress] == [
        "ApiLoadBalancerSecurityGroup"
    ]
    listener = props(template, "ApiListener")
    assert listener["Protocol"] == {"Fn::If": ["HasApiCertificate", "HTTPS", "HTTP"]}
    assert listener["SslPolicy"]["Fn::If"][1].startswith("ELBSecurityPolicy-TLS13")


def test_the_api_reads_the_same_state_rules_and_model_as_the_workers(
    template: dict[str, Any],
) -> None:
    worker, api = (
        environment_of(worker_container(template)),
        environment_of(api_container(template)),
    )
    for name in ("FRAUD_RULESET", "FRAUD_MODEL_DIR", "FRAUD_METRICS_MODE", "FRAUD_STREAM"):
        assert api[name] == worker[name], name
    assert api["FRAUD_API_KEYS_SECRET"] == {"Ref": "ApiKeys"}
    keys = props(template, "ApiKeys")
    assert "GenerateSecretString" not in keys  # hashes an operator adds, never a key in the stack
    assert json.loads(keys["SecretString"]) == {"keys": []}
    (secret,) = api_container(template)["Secrets"]
    assert secret == {"Name": "REDIS_URL", "ValueFrom": {"Ref": "RedisUrl"}}


def test_the_api_role_writes_nothing_but_a_record_on_the_stream(template: dict[str, Any]) -> None:
    granted = {
        a for s in statements(template["Resources"]["ApiTaskRole"]) for a in as_list(s["Action"])
    }
    assert granted == {
        "kinesis:PutRecord",
        "secretsmanager:GetSecretValue",
        "s3:GetObject",
        "kms:Decrypt",
        "cloudwatch:PutMetricData",
    }


def test_the_api_scales_on_cpu_and_requests_per_task(template: dict[str, Any]) -> None:
    target = props(template, "ApiScalableTarget")
    assert target["MinCapacity"] == {"Ref": "ApiMinTasks"}
    assert target["MaxCapacity"] == {"Ref": "ApiMaxTasks"}
    assert "DesiredCount" not in props(template, "ApiService")
    kinds = set()
    for policy in resources_of(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values():
        config = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        assert referenced(policy["Properties"]["ScalingTargetId"]) == "ApiScalableTarget"
        kinds.add(config["PredefinedMetricSpecification"]["PredefinedMetricType"])
    assert kinds == {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"}


def test_the_api_has_its_alarms_and_dashboard_widgets(template: dict[str, Any]) -> None:
    watched: set[tuple[str, str]] = set()
    for alarm in resources_of(template, "AWS::CloudWatch::Alarm").values():
        p = alarm["Properties"]
        watched.add((str(p.get("Namespace")), str(p.get("MetricName"))))
        watched |= {
            (str(m["MetricStat"]["Metric"]["Namespace"]), m["MetricStat"]["Metric"]["MetricName"])
            for m in p.get("Metrics", [])
            if "MetricStat" in m
        }
    elb = "AWS/ApplicationELB"
    assert {
        (elb, "TargetResponseTime"),
        (elb, "HTTPCode_Target_5XX_Count"),
        (elb, "HTTPCode_ELB_5XX_Count"),
        (elb, "HealthyHostCount"),
    } <= watched
    body = props(template, "Dashboard")["DashboardBody"]["Fn::Sub"][0]
    shown = set(dashboard_metrics(body))
    assert {(elb, "RequestCount"), (elb, "TargetResponseTime"), (elb, "HealthyHostCount")} <= shown


# --- Files into the stream (docs/ingest.md) ---------------------------------------------------


def test_a_file_under_incoming_starts_an_ingest_task_with_its_location(
    template: dict[str, Any],
) -> None:
    bucket = props(template, "Bucket")
    assert bucket["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"]
    rule = props(template, "IngestRule")
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": "Bucket"}]
    (key_filter,) = pattern["detail"]["object"]["key"]
    assert resource_text(key_filter["prefix"]) == "${S3Prefix}incoming/"
    (target,) = rule["Targets"]
    assert referenced(target["EcsParameters"]["TaskDefinitionArn"]) == "IngestTaskDefinition"
    assert referenced(target["RoleArn"]) == "IngestEventsRole"
    assert referenced(target["DeadLetterConfig"]["Arn"]) == "IngestNotStartedQueue"
    overrides = json.loads(
        target["InputTransformer"]["InputTemplate"]
        .replace("<bucket>", "my-bucket")
        .replace("<key>", "incoming/batch.csv")
    )
    (override,) = overrides["containerOverrides"]
    (container,) = props(template, "IngestTaskDefinition")["ContainerDefinitions"]
    assert override["name"] == container["Name"]
    assert container["EntryPoint"] == ["fraudstream"]
    assert override["command"] == ["ingest", "s3://my-bucket/incoming/batch.csv", "--archive"]
    paths = target["InputTransformer"]["InputPathsMap"]
    assert paths == {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key"}


def test_the_ingest_role_touches_only_the_incoming_files_and_the_stream(
    template: dict[str, Any],
) -> None:
    for statement in statements(template["Resources"]["IngestTaskRole"]):
        actions = set(as_list(statement["Action"]))
        for resource in as_list(statement["Resource"]):
            text = resource_text(resource)
            if actions & {"s3:PutObject", "s3:DeleteObject"}:
                assert text.startswith("${Bucket.Arn}/${S3Prefix}"), text
                assert "incoming/" in text or "ingest-rejects/" in text, text
            if actions == {"kinesis:PutRecords"}:
                assert referenced(resource) == "Stream"
    granted = {
        a for s in statements(template["Resources"]["IngestTaskRole"]) for a in as_list(s["Action"])
    }
    assert not {a for a in granted if a.startswith(("dynamodb:", "sns:", "secretsmanager:"))}


def test_every_container_command_and_setting_is_one_the_cli_knows(template: dict[str, Any]) -> None:
    """The API and ingest containers run `fraudstream` with arguments written in YAML; a renamed
    option or setting would only fail in AWS. Parsed here by the real parser; every FRAUD_*
    variable they set is a known setting."""
    parser = build_parser()
    api = api_container(template)
    assert parser.parse_args(api["Command"]).command == "serve"
    (ingest,) = props(template, "IngestTaskDefinition")["ContainerDefinitions"]
    (target,) = props(template, "IngestRule")["Targets"]
    template_text = target["InputTransformer"]["InputTemplate"]
    overrides = json.loads(
        template_text.replace("<bucket>", "b").replace("<key>", "incoming/f.csv")
    )
    args = parser.parse_args(overrides["containerOverrides"][0]["command"])
    assert args.command == "ingest"
    for container in (api, ingest, worker_container(template)):
        names = set(environment_of(container))
        assert {n for n in names if n.startswith("FRAUD_")} <= KNOWN_KEYS, container["Name"]
