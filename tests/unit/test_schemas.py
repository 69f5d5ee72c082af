"""The JSON Schemas in schemas/ match the models; the outputs encode canonically."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from relmon.cli import main
from relmon.domain import (
    Alert,
    DeadLetter,
    Reason,
    SuppressionRecord,
    encode_alert,
    encode_dead_letter,
    encode_record,
)
from relmon.domain.outputs import construct
from relmon.schemas_export import differences, export_schemas, schema_documents
from relmon.testing import at, call, consent, donation, run

SCHEMAS = Path(__file__).parents[2] / "schemas"


def test_checked_in_schemas_match_the_models() -> None:
    """schemas/ is what `relmon schemas export` writes now (run it and commit if this fails)."""
    assert differences(SCHEMAS) == []


def test_one_schema_per_type() -> None:
    """Every input event type, their union and every output type has a schema file."""
    assert set(schema_documents()) == {
        "call_outcome",
        "consent_change",
        "email_engagement",
        "donation_change",
        "input_event",
        "suppression_record",
        "alert",
        "dead_letter",
        "suppression_answer",
    }


def test_schemas_check_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`schemas check` exits 0 on a fresh export, else 1 naming each changed/missing/extra file."""
    assert main(["schemas", "export", "--dir", str(tmp_path)]) == 0
    assert main(["schemas", "check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "alert.json").write_text("{}\n")
    (tmp_path / "dead_letter.json").unlink()
    (tmp_path / "old_thing.json").write_text("{}\n")
    capsys.readouterr()
    assert main(["schemas", "check", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "alert.json: differs" in out
    assert "dead_letter.json: missing" in out
    assert "old_thing.json: no model" in out


def test_export_writes_the_files_it_returns(tmp_path: Path) -> None:
    """export_schemas writes one parseable JSON file per document, plus the OpenAPI
    document, and returns their paths."""
    paths = export_schemas(tmp_path / "out")
    assert sorted(p.stem for p in paths) == sorted([*schema_documents(), "openapi"])
    for path in paths:
        doc = orjson.loads(path.read_bytes())
        if path.name == "openapi.json":
            assert doc["openapi"] == "3.1.0"
        else:
            assert doc["$schema"].startswith("https://json-schema.org/")


def test_fast_construction_equals_validation() -> None:
    """The engine's unvalidated construction gives the same model validation gives."""
    values = {
        "supporter_id": "s",
        "suppressed": True,
        "reasons": [Reason(code="MIN_GAP", until=datetime(2026, 3, 1, tzinfo=UTC), detail="d")],
        "until": None,
        "fatigue": 0.5,
        "irritation_risk": 0.25,
        "loyal": False,
        "policy_version": "v",
        "decided_at": datetime(2026, 3, 1, tzinfo=UTC),
        "cause_event_id": None,
    }
    built = construct(SuppressionRecord, **values)
    assert built == SuppressionRecord.model_validate(values)
    assert built.model_dump() == SuppressionRecord.model_validate(values).model_dump()


def test_records_encode_canonically() -> None:
    """Fixed field order, UTC `Z` timestamps in whole seconds, floats rounded to 6 decimals."""
    cet = timezone(timedelta(hours=1))
    record = SuppressionRecord(
        supporter_id="s-1",
        suppressed=True,
        reasons=[
            Reason(
                code="COMPLAINT", until=datetime(2026, 9, 1, 12, 0, 0, 999, tzinfo=cet), detail="x"
            )
        ],
        until=None,
        fatigue=0.123456789,
        irritation_risk=1 / 3,
        loyal=True,
        policy_version="v1",
        decided_at=datetime(2026, 3, 1, 18, 5, tzinfo=cet),
        cause_event_id="e-1",
    )
    assert encode_record(record) == (
        b'{"supporter_id":"s-1","suppressed":true,"reasons":[{"code":"COMPLAINT",'
        b'"until":"2026-09-01T11:00:00Z","detail":"x"}],"until":null,"fatigue":0.123457,'
        b'"irritation_risk":0.333333,"loyal":true,"policy_version":"v1",'
        b'"decided_at":"2026-03-01T17:05:00Z","cause_event_id":"e-1"}'
    )


def test_alerts_and_dead_letters_encode_to_their_schema_fields() -> None:
    """Encoded alerts and dead letters carry exactly the fields of their models, in order
    (``window`` only on ``call_outside_window`` alerts, whose JSON validates too)."""
    churn = run([call(at=at(0)), donation(at=at(2), action="cancelled", started=at(-800))]).alerts[
        0
    ]
    chase = run([consent(), call(at=at(1))]).alerts[0]
    letter = DeadLetter(
        error="e", kind="json", source="f.jsonl", partition=None, offset=None, line=3,
        original_base64="e30=", policy_version="v",
    )  # fmt: skip
    for alert in (churn, chase):
        data = orjson.loads(encode_alert(alert))
        assert list(data) == [f for f in Alert.model_fields if f != "window"]
        assert Alert.model_validate(data).alert_id == alert.alert_id
    late = datetime(2026, 3, 2, 23, 0, tzinfo=timezone(timedelta(hours=1)))  # Monday, 23:00
    (outside,) = [a for a in run([call(at=late)]).alerts if a.kind == "call_outside_window"]
    data = orjson.loads(encode_alert(outside))
    assert list(data) == list(Alert.model_fields)
    assert Alert.model_validate(data) == outside
    data = orjson.loads(encode_dead_letter(letter))
    assert list(data) == list(DeadLetter.model_fields)
    assert DeadLetter.model_validate(data) == letter
    assert not encode_alert(churn).endswith(b"\n")
