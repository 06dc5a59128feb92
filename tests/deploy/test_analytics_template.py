"""deploy/ecs/fraudstream.yaml, analytics (docs/analytics.md): the Glue tables read what the
workers write, where they write it; the Athena workgroup enforces its results location and
encryption; the analysts' policy reads the five outputs and writes only query results.

The layout and line formats are docs/contract.md's (sections 1, 4 and 5), cross-checked with the
writers' own code (consumer/sinks/s3_batches.py, consumer/batch/lines.py), so a change to either
that the tables do not follow fails here, not in an analyst's query.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from consumer.batch.lines import dead_letter_line
from consumer.records import RecordPosition
from consumer.sinks.s3_batches import dead_letter_key, decisions_key, flagged_key, shadow_key

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "ecs" / "fraudstream.yaml"
CONTRACT = (REPO / "docs" / "contract.md").read_text()

# Glue table (its Name = the report's view name) -> the contract's prefix in the layout table.
TABLES = {
    "FlaggedTable": ("flagged", "flagged"),
    "DecisionsTable": ("decisions", "decisions"),
    "ShadowTable": ("shadow", "shadow"),
    "DeadLettersTable": ("dead_letters", "dead letters"),
    "LabelsTable": ("label_files", None),
}
# The report's five tables (consumer/report/tables.py) as Athena sees them: four Glue tables and
# the `labels` view over `label_files` (is_fraud a boolean, times exact epoch seconds).
REPORT_TABLES = {"flagged", "decisions", "shadow", "dead_letters", "labels"}
OUTPUT_FOLDERS = ("flagged/", "decisions/", "shadow/", "dead-letter/", "labels/")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(TEMPLATE))
    return loaded


def props(template: dict[str, Any], name: str) -> dict[str, Any]:
    value: dict[str, Any] = template["Resources"][name]["Properties"]
    return value


def sub_text(value: Any) -> str:
    """The text of an Fn::Sub (its `${!x}` escapes as CloudFormation renders them: `${x}`)."""
    if isinstance(value, str):
        return value
    sub = value["Fn::Sub"]
    return str(sub[0] if isinstance(sub, list) else sub).replace("${!", "${")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def section(heading: str, text: str = CONTRACT) -> str:
    """The text under a markdown heading, up to the next heading of any level."""
    match = re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#+ |\Z)", text, re.M | re.S)
    assert match, heading
    return match.group(1)


def first_cell_fields(text: str) -> set[str]:
    """The backticked names in the first cell of each table row (skipping the header)."""
    fields: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            fields |= set(re.findall(r"`(\w+)`", line.split("|")[1]))
    return fields


def contract_layout() -> dict[str, str]:
    """docs/contract.md's S3 layout table: prefix -> the key's folder part, as a template."""
    rows = re.findall(r"^\| ([a-z ]+) \| `([^`]+)` \|", section("S3 layout"), re.M)
    assert len(rows) == 4, rows
    layout = {}
    for prefix, key in rows:
        folder = key.rsplit("/", 1)[0] + "/"
        folder = folder.replace("${FRAUD_PREFIX}", "${S3Prefix}")
        layout[prefix] = folder.replace("YYYY-MM-DD", "${dt}").replace("HH", "${hour}")
    return layout


def columns(template: dict[str, Any], table: str) -> dict[str, str]:
    storage = props(template, table)["TableInput"]["StorageDescriptor"]
    return {c["Name"]: c["Type"] for c in storage["Columns"]}


def struct_fields(type_text: str) -> dict[str, str]:
    """`struct<a:string,b:decimal(38,18)>` -> {a: string, b: decimal(38,18)} (flat structs)."""
    inner = re.fullmatch(r"struct<(.*)>", type_text)
    assert inner, type_text
    return dict(field.split(":", 1) for field in re.split(r",(?![^(]*\))", inner.group(1)))


# --- Where the tables read ------------------------------------------------------------------


def test_the_tables_are_the_reports_five_views(template: dict[str, Any]) -> None:
    glue = {k for k, v in template["Resources"].items() if v["Type"] == "AWS::Glue::Table"}
    assert glue == set(TABLES) | {"LabelsView"}
    names = {props(template, k)["TableInput"]["Name"] for k in glue}
    assert names == REPORT_TABLES | {"label_files"}
    for logical, (name, _) in TABLES.items():
        table = props(template, logical)
        assert table["DatabaseName"] == {"Ref": "AnalyticsDatabase"}
        assert table["TableInput"]["Name"] == name
        serde = table["TableInput"]["StorageDescriptor"]["SerdeInfo"]
        assert serde["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
        # A line the SerDe cannot read is a row of NULLs, not a failed query.
        assert serde["Parameters"]["ignore.malformed.json"] == "true"


def test_partition_projection_follows_the_contracts_key_layout(template: dict[str, Any]) -> None:
    layout = contract_layout()
    for logical, (_, prefix) in TABLES.items():
        table = props(template, logical)["TableInput"]
        location = sub_text(table["StorageDescriptor"]["Location"])
        parameters = table["Parameters"]
        if prefix is None:  # labels: files anywhere under labels/, no partitions
            assert location == "s3://${Bucket}/${S3Prefix}labels/"
            assert "PartitionKeys" not in table and "projection.enabled" not in parameters
            continue
        folder = layout[prefix]
        assert location == "s3://${Bucket}/" + folder.split("dt=")[0]
        assert sub_text(parameters["storage.location.template"]) == "s3://${Bucket}/" + folder
        keys = [k["Name"] for k in table["PartitionKeys"]]
        assert keys == re.findall(r"(\w+)=\$\{", folder)
        assert all(k["Type"] == "string" for k in table["PartitionKeys"])  # 'YYYY-MM-DD', 'HH'
        assert parameters["projection.enabled"] == "true"
        assert parameters["projection.dt.type"] == "date"
        assert parameters["projection.dt.format"] == "yyyy-MM-dd"
        assert sub_text(parameters["projection.dt.range"]) == "${AnalyticsStartDate},NOW"
        assert parameters["projection.dt.interval.unit"] == "DAYS"
        if "hour" in keys:
            assert parameters["projection.hour.type"] == "integer"
            assert parameters["projection.hour.range"] == "0,23"
            assert parameters["projection.hour.digits"] == "2"


@pytest.mark.parametrize("arrival", ["2026-01-01T00:00:00Z", "2026-12-07T09:59:59.999Z"])
def test_the_projected_location_is_where_the_writers_put_the_objects(
    template: dict[str, Any], arrival: str
) -> None:
    """Render the projection's template as Athena would and compare with the writers' keys."""
    at = datetime.fromisoformat(arrival.replace("Z", "+00:00")).astimezone(UTC)
    position = RecordPosition(
        "shardId-000000000001", "4965" + "0" * 52, 0, int(at.timestamp() * 1000)
    )
    writers = {
        "FlaggedTable": flagged_key,
        "DecisionsTable": decisions_key,
        "ShadowTable": shadow_key,
        "DeadLettersTable": dead_letter_key,
    }
    for logical, key_of in writers.items():
        parameters = props(template, logical)["TableInput"]["Parameters"]
        projected = (
            sub_text(parameters["storage.location.template"])
            .replace("s3://${Bucket}/${S3Prefix}", "team/fraud/")
            .replace("${dt}", f"{at:%Y-%m-%d}")
            .replace(
                "${hour}", str(at.hour).zfill(int(parameters.get("projection.hour.digits", 2)))
            )
        )
        key = key_of("team/fraud/", position)
        assert key.startswith(projected) and "/" not in key[len(projected) :], (projected, key)


def test_the_labels_table_does_not_read_the_rejected_lines_reports(
    template: dict[str, Any],
) -> None:
    """labels-rejected/ is a sibling of labels/: a location ending in `labels/` excludes it."""
    location = sub_text(
        props(template, "LabelsTable")["TableInput"]["StorageDescriptor"]["Location"]
    )
    assert location == "s3://${Bucket}/${S3Prefix}labels/"
    assert not "s3://${Bucket}/${S3Prefix}labels-rejected/a.csv.jsonl".startswith(location)


# --- What the tables read -------------------------------------------------------------------


def contract_fields() -> dict[str, set[str]]:
    flagged = first_cell_fields(section("A flagged line"))
    return {
        "FlaggedTable": flagged,
        "ShadowTable": (flagged - {"model_score", "model_version"}) | {"flagged_by_live_rules"},
        "DecisionsTable": first_cell_fields(section("A decision line (the audit trail)")),
        "DeadLettersTable": first_cell_fields(section("A dead-letter line")),
        "LabelsTable": first_cell_fields(section("Fields")),
    }


def test_every_column_is_a_field_of_the_contracts_line_formats(template: dict[str, Any]) -> None:
    """And every field of a line is a column: nothing the workers write is out of reach."""
    assert "flagged_by_live_rules" in section("A shadow line")
    for logical, fields in contract_fields().items():
        assert set(columns(template, logical)) == fields, logical


def test_the_nested_fields_follow_the_contract(template: dict[str, Any]) -> None:
    flagged = columns(template, "FlaggedTable")
    assert flagged["reasons"] == "array<struct<rule:string,detail:string>>"
    assert '{"rule": <rule id>, "detail": <text for people>}' in section("A flagged line")
    assert columns(template, "DecisionsTable")["rules"] == "array<string>"
    transaction_fields = first_cell_fields(section("1. A transaction"))
    for logical in ("FlaggedTable", "ShadowTable"):
        fields = struct_fields(columns(template, logical)["transaction"])
        assert set(fields) == transaction_fields, logical


def test_amounts_are_exact_decimals_wide_enough_for_the_contracts_bounds(
    template: dict[str, Any],
) -> None:
    """DECIMAL(38,18), not DOUBLE: an amount is a multiple of 1e-18, at most 1e9, a balance
    within 1e15 (contract section 1); 16 integer digits + 18 decimals fit in 38."""
    fields = struct_fields(columns(template, "FlaggedTable")["transaction"])
    precision, scale = 38, 18
    for name, bound in (("amount", Decimal("1e9")), ("account_balance", Decimal("1e15"))):
        assert fields[name] == f"decimal({precision},{scale})", name
        integer_digits = len(str(int(bound)))
        assert integer_digits + scale <= precision, name
    assert "multiples of 1e-18" in section("Bounds") and "`0 < amount <= 1e9`" in CONTRACT
    # Times kept as written (an ISO string or epoch milliseconds: both read as a string).
    assert fields["timestamp"] == "string"
    assert columns(template, "LabelsTable")["labelled_at"] == "string"
    assert columns(template, "LabelsTable")["is_fraud"] == "string"  # true/false or 1/0


def test_the_writers_lines_have_no_field_without_a_column(template: dict[str, Any]) -> None:
    position = RecordPosition("shardId-000000000000", "1", 0, 1795910300000)
    line = dead_letter_line(b"{", position, "not valid JSON: x")
    assert set(line) == set(columns(template, "DeadLettersTable"))


# --- The workgroup --------------------------------------------------------------------------


def test_the_workgroup_enforces_encrypted_results_in_their_bucket_and_a_scan_cutoff(
    template: dict[str, Any],
) -> None:
    group = props(template, "AnalyticsWorkGroup")
    config = group["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == {"Ref": "AthenaBytesScannedCutoff"}
    assert config["EngineVersion"]["SelectedEngineVersion"] == "Athena engine version 3"
    results = config["ResultConfiguration"]
    assert sub_text(results["OutputLocation"]) == "s3://${AnalyticsResultsBucket}/"
    assert results["EncryptionConfiguration"] == {
        "EncryptionOption": "SSE_KMS",
        "KmsKey": {"Fn::GetAtt": ["DataKey", "Arn"]},
    }
    assert template["Parameters"]["AthenaBytesScannedCutoff"]["MinValue"] >= 10 * 1024 * 1024


def test_query_results_expire(template: dict[str, Any]) -> None:
    (rule,) = props(template, "AnalyticsResultsBucket")["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and "Prefix" not in rule
    assert rule["ExpirationInDays"] == {"Ref": "AthenaResultsRetentionDays"}


# --- The analysts' policy -------------------------------------------------------------------


def analyst_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = props(template, "AnalyticsReadPolicy")["PolicyDocument"][
        "Statement"
    ]
    return found


def test_the_analysts_policy_is_read_only_on_the_outputs(template: dict[str, Any]) -> None:
    by_action: dict[str, list[str]] = {}
    for statement in analyst_statements(template):
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            assert "*" not in action, action
            for resource in as_list(statement["Resource"]):
                text = (
                    sub_text(resource)
                    if not isinstance(resource, dict) or "Fn::Sub" in resource
                    else str(resource)
                )
                assert text != "*", action
                by_action.setdefault(action, []).append(text)
    assert set(by_action) == {
        "athena:GetWorkGroup",
        "athena:StartQueryExecution",
        "athena:GetQueryExecution",
        "athena:GetQueryResults",
        "athena:StopQueryExecution",
        "glue:GetDatabase",
        "glue:GetTable",
        "glue:GetTables",
        "glue:GetPartitions",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    }
    workgroup = (
        "arn:${AWS::Partition}:athena:${AWS::Region}:${AWS::AccountId}"
        ":workgroup/${AnalyticsWorkGroup}"
    )
    for action, resources in by_action.items():
        if action.startswith("athena:"):
            assert resources == [workgroup], action
    reads = sorted(by_action["s3:GetObject"])
    assert reads == sorted(
        ["${Bucket.Arn}/${S3Prefix}" + f + "*" for f in OUTPUT_FOLDERS]
        + ["${AnalyticsResultsBucket.Arn}/*"]
    )
    # Writes: query results only, never the data bucket.
    for action in ("s3:PutObject", "s3:AbortMultipartUpload"):
        assert by_action[action] == ["${AnalyticsResultsBucket.Arn}/*"], action


def test_the_analysts_list_only_the_output_prefixes_of_the_data_bucket(
    template: dict[str, Any],
) -> None:
    listing = [s for s in analyst_statements(template) if "s3:ListBucket" in as_list(s["Action"])]
    on_data = [s for s in listing if s["Resource"] == {"Fn::GetAtt": ["Bucket", "Arn"]}]
    (data,) = on_data
    prefixes = sorted(sub_text(p) for p in data["Condition"]["StringLike"]["s3:prefix"])
    assert prefixes == sorted("${S3Prefix}" + f + "*" for f in OUTPUT_FOLDERS)
    (results,) = [s for s in listing if s is not data]
    assert results["Resource"] == {"Fn::GetAtt": ["AnalyticsResultsBucket", "Arn"]}


def test_the_analysts_read_only_the_five_tables_definitions(template: dict[str, Any]) -> None:
    (glue,) = [
        s for s in analyst_statements(template) if as_list(s["Action"])[0].startswith("glue:")
    ]
    arn = "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:"
    names = sorted(REPORT_TABLES | {"label_files"})
    assert sorted(sub_text(r) for r in glue["Resource"]) == sorted(
        [arn + "catalog", arn + "database/${AnalyticsDatabase}"]
        + [arn + "table/${AnalyticsDatabase}/" + n for n in names]
    )


def test_the_analysts_use_the_data_key_only_through_s3(template: dict[str, Any]) -> None:
    (kms,) = [s for s in analyst_statements(template) if as_list(s["Action"])[0].startswith("kms:")]
    assert kms["Resource"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    via = kms["Condition"]["StringEquals"]["kms:ViaService"]
    assert sub_text(via) == "s3.${AWS::Region}.amazonaws.com"


# --- The labels view ------------------------------------------------------------------------


def view_definition(template: dict[str, Any], database: str = "fraudstream") -> dict[str, Any]:
    """The Trino view JSON inside the view's text, rendered as CloudFormation would."""
    text = props(template, "LabelsView")["TableInput"]["ViewOriginalText"]["Fn::Join"]
    assert text[0] == ""
    head, encoded, tail = text[1]
    assert head == "/* Presto View: " and tail == " */"
    body, variables = encoded["Fn::Base64"]["Fn::Sub"]
    rendered = body.replace("${Sql}", variables["Sql"]).replace("${AnalyticsDatabase}", database)
    assert "${" not in rendered
    loaded: dict[str, Any] = json.loads(rendered)
    return loaded


def test_the_labels_view_is_an_athena_view_over_the_label_files(template: dict[str, Any]) -> None:
    table = props(template, "LabelsView")["TableInput"]
    assert table["Name"] == "labels" and table["TableType"] == "VIRTUAL_VIEW"
    assert table["Parameters"]["presto_view"] == "true"
    assert table["ViewExpandedText"] == "/* Presto View */"
    view = view_definition(template)
    assert view["catalog"] == "awsdatacatalog" and view["schema"] == "fraudstream"
    assert re.search(r"\bFROM label_files\b", view["originalSql"])
    glue_types = {"string": "varchar"}
    glue = [
        (c["Name"], glue_types.get(c["Type"], c["Type"]))
        for c in table["StorageDescriptor"]["Columns"]
    ]
    assert [(c["name"], c["type"]) for c in view["columns"]] == glue
    # The report's types (consumer/report/tables.py LABEL_COLUMNS), the contract's fields.
    assert dict(glue) == {
        "transaction_id": "varchar",
        "is_fraud": "boolean",
        "labelled_at": "decimal(20,6)",
        "account_id": "varchar",
        "merchant_id": "varchar",
        "event_time": "decimal(20,6)",
    }
    assert set(dict(glue)) == contract_fields()["LabelsTable"]
