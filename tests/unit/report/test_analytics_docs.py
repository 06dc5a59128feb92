"""docs/analytics.md: its SQL is the report's SQL, and it runs.

Every ```sql block of the page is one file of consumer/report/sql/ (whitespace aside) and every
file is on the page; each runs in the report's engine (DuckDB, the tables of
consumer/report/tables.py) over an output tree written by the workers' own line writers, with
exactly the parameters its first line names. The Athena `labels` view of the template
(deploy/ecs/fraudstream.yaml) runs here too, with DuckDB stand-ins for three Trino functions, and
must give the report's labels. Whether each query parses as Trino is checked only when `sqlglot`
is installed (it is not a dependency: skipped otherwise).
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from cfnlint.decode import cfn_yaml

from consumer.report import figures, tables
from tests.unit.report.analytics_sample import DAYS, write_sample
from tests.unit.report.tree import write_labels

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "analytics.md"
SQL_DIR = REPO / "consumer" / "report" / "sql"
PARAMS = {"start_dt": DAYS[0], "end_dt": DAYS[1], "alert_rank": 2}
_PARAM = re.compile(r"(?<![:\w]):([a-z_]+)\b")


def normalised(text: str) -> str:
    return " ".join(text.split())


def doc_blocks() -> list[str]:
    return re.findall(r"^```sql\n(.*?)^```$", DOC.read_text(), re.M | re.S)


def sql_files() -> dict[str, str]:
    return {path.stem: path.read_text() for path in sorted(SQL_DIR.glob("*.sql"))}


def test_every_sql_block_is_a_report_file_and_every_file_is_on_the_page() -> None:
    files = {normalised(text): name for name, text in sql_files().items()}
    assert files, "no SQL files"
    shown = [normalised(block) for block in doc_blocks()]
    unknown = [block[:80] for block in shown if block not in files]
    assert not unknown, f"SQL on the page that is no file of consumer/report/sql: {unknown}"
    missing = sorted(name for text, name in files.items() if text not in shown)
    assert not missing, f"consumer/report/sql files not on docs/analytics.md: {missing}"
    assert len(shown) == len(set(shown)), "a query shown twice"


def test_each_query_names_its_parameters_on_its_first_line() -> None:
    for name, text in sql_files().items():
        first, _, body = text.partition("\n")
        assert first.startswith("-- parameters: "), name
        named = set(_PARAM.findall(first))
        used = set(_PARAM.findall(body))
        assert used == named, (name, used, named)
        assert used <= PARAMS.keys(), name


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The report's five tables loaded from the sample output tree (analytics_sample.py)."""
    root = tmp_path_factory.mktemp("outputs")
    write_sample(root)
    workdir = tmp_path_factory.mktemp("duckdb")
    connection = tables.connect(workdir)
    tables.create_tables(connection)
    source = tables.Location(str(root))
    loaded = tables.load(connection, tables.plan(source, date(2026, 12, 6), date(2026, 12, 7)))
    tables.load_labels(connection, tables.Location(str(root / "labels")), workdir, loaded)
    assert all(loaded.rows[name] for name in tables.TABLES), loaded.rows
    yield connection
    connection.close()


@pytest.mark.parametrize("index", range(len(doc_blocks())))
def test_each_query_on_the_page_runs_in_the_reports_engine(con: Any, index: int) -> None:
    text = doc_blocks()[index]
    names = set(_PARAM.findall(text))
    rows = con.execute(_PARAM.sub(r"$\1", text), {n: PARAMS[n] for n in names}).fetchall()
    assert rows, text.splitlines()[0]
    # The page's text gives what the report's own run of the file gives.
    (figure,) = [n for n, t in sql_files().items() if normalised(t) == normalised(text)]
    assert len(figures.run_sql(con, figure, PARAMS)) == len(rows), figure


def test_the_queries_parse_as_trino() -> None:
    """Athena's dialect: a syntax only DuckDB knows (QUALIFY, a trailing clause) fails here; the
    parser is lenient about functions, which the DuckDB run above cannot check either."""
    for name, text in sql_files().items():
        try:
            sqlglot.parse_one(_PARAM.sub("?", text), read="trino")
        except sqlglot.ParseError as error:
            raise AssertionError(f"{name}: not Trino SQL: {error}") from error
    with pytest.raises(sqlglot.ParseError):
        sqlglot.parse_one("SELECT a FROM flagged QUALIFY a > 1", read="trino")


# --- The Athena labels view, run in DuckDB ----------------------------------------------------

# Trino functions the view uses, as DuckDB macros with the same meaning on these inputs.
TRINO_STAND_INS = (
    "CREATE MACRO regexp_like(s, p) AS regexp_matches(s, p)",
    "CREATE MACRO from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ)",
    "CREATE MACRO to_unixtime(t) AS epoch(t)",
)


def labels_view_sql() -> str:
    template: dict[str, Any] = cfn_yaml.load(str(REPO / "deploy" / "ecs" / "fraudstream.yaml"))
    joined = template["Resources"]["LabelsView"]["Properties"]["TableInput"]["ViewOriginalText"]
    body, variables = joined["Fn::Join"][1][1]["Fn::Base64"]["Fn::Sub"]
    view = json.loads(body.replace("${Sql}", variables["Sql"]).replace("${AnalyticsDatabase}", "d"))
    sql: str = view["originalSql"]
    return sql


def test_the_athena_labels_view_gives_the_reports_labels(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [
        # The contract's examples (section 5), and 1/0 verdicts, offsets, a bad line.
        {
            "transaction_id": "tx-000123",
            "is_fraud": True,
            "labelled_at": "2025-12-01T10:00:00Z",
            "account_id": "acct-42",
            "merchant_id": "merch-7",
            "event_time": "2025-11-30T22:14:03.120Z",
        },
        {
            "transaction_id": "tx-000124",
            "is_fraud": False,
            "labelled_at": 1764583200000,
            "account_id": "acct-43",
            "event_time": 1764540000000,
        },
        {
            "transaction_id": "tx-3",
            "is_fraud": 1,
            "labelled_at": "2025-12-01T12:30:00.250+02:00",
            "account_id": "a",
            "merchant_id": "",
            "event_time": 1764540000001,
        },
        {
            "transaction_id": "tx-4",
            "is_fraud": 0,
            "labelled_at": 1764583200123,
            "account_id": "a",
            "event_time": 1764540000000,
        },
        {"transaction_id": "tx-5", "is_fraud": "maybe", "account_id": "a"},
    ]
    write_labels(tmp_path, rows)
    workdir = tmp_path / "db"
    workdir.mkdir()
    con = tables.connect(workdir)
    try:
        tables.create_tables(con)
        loaded = tables.Loaded()
        tables.load_labels(con, tables.Location(str(tmp_path / "labels")), workdir, loaded)
        for macro in TRINO_STAND_INS:
            con.execute(macro)
        raw = {name: "VARCHAR" for name in tables.LABEL_COLUMNS}
        con.execute(
            "CREATE TABLE label_files AS SELECT * FROM read_json($path, "
            "columns = {" + ", ".join(f"'{k}': '{v}'" for k, v in raw.items()) + "}, "
            "format = 'newline_delimited')",
            {"path": str(tmp_path / "labels" / "l.jsonl")},
        )
        columns = ", ".join(tables.LABEL_COLUMNS)
        report = con.execute(f"SELECT {columns} FROM labels ORDER BY 1").fetchall()
        athena = con.execute(f"SELECT {columns} FROM ({labels_view_sql()}) ORDER BY 1").fetchall()
    finally:
        con.close()
    assert loaded.bad_labels == 1 and len(report) == 4
    assert athena == report
