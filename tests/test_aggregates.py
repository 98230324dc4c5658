"""Behaviour of lendgate.aggregates (Rust: core_rs/lendgate-core/src/aggregates)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from lendgate import AggregateStore, InvalidArgumentError
from lendgate.aggregates import compare_fl
from lendgate.v1 import scoring_pb2

SEED_PACK = (
    Path(__file__).resolve().parent.parent / "testdata" / "aggregates" / "seed003_rules.json"
)
DAY = 86_400_000
T0 = 1_709_251_200_000  # 2024-03-01T00:00:00Z

YAML_DEFS = """
time_attr: t
allowed_lateness_seconds: 86400
objects:
  - name: Client
    key: [{attr: client.id, kind: text}]
    elements:
      - {name: amounts, kind: time_and_value, attr: amount, type: integer, max_days: 30}
      - {name: devices, kind: unique, attr: device, type: string, max_records: 10}
  - name: EmployerAndIp
    key: [{attr: employer.inn, kind: alnum}, {attr: ip}]
    elements:
      - name: created
        kind: date_and_counter
        filter: {all: [{attr: subtype, eq: LOAN_APP_CREATE}]}
params:
  - {fn: calc_aggregate, name: sum_2d, object: Client, element: amounts, agg: sum,
     window: {unit: days, last: 2}}
  - {fn: calc_aggregate, name: sum_before, object: Client, element: amounts, agg: sum,
     except: record}
  - {fn: calc_aggregate, name: other_devices, object: Client, element: devices,
     agg: unique_count, except: value}
  - {fn: calc_aggregate, name: created_2d, object: EmployerAndIp, element: created, agg: sum,
     window: {unit: days, last: 2}}
"""


def event(t: int, **fields: Any) -> bytes:
    """A JSON event at epoch-ms time ``t``."""
    return json.dumps({"t": t, **fields}).encode()


def pay(t: int, amount: int, client: str = "c1", device: str = "d1") -> bytes:
    return event(t, client={"id": client}, amount=amount, device=device)


@pytest.fixture
def store() -> AggregateStore:
    return AggregateStore.from_yaml(YAML_DEFS)


def test_windows_use_event_time(store: AggregateStore) -> None:
    assert store.apply(pay(T0, 10))["sum_2d"] == 10
    assert store.apply(pay(T0 + DAY, 20))["sum_2d"] == 30
    assert store.apply(pay(T0 + 3 * DAY, 5))["sum_2d"] == 5
    # A late event is answered as of its own time and lands in place.
    late = store.apply(pay(T0 + 2 * DAY + 1, 7))
    assert late["sum_2d"] == 20 + 7
    assert store.watermark == T0 + 3 * DAY


def test_exclusion_of_the_current_record_and_value(store: AggregateStore) -> None:
    first = store.apply(pay(T0, 10, device="d1"))
    assert first["sum_before"] == 0
    assert first["other_devices"] == 0
    second = store.apply(pay(T0 + 1, 5, device="d2"))
    assert second["sum_before"] == 10
    assert second["other_devices"] == 1


def test_composite_keys_are_normalised(store: AggregateStore) -> None:
    def create(t: int, inn: str, ip: str) -> bytes:
        return event(t, subtype="LOAN_APP_CREATE", employer={"inn": inn}, ip=ip)

    store.apply(create(T0, "7701 234567", "10.0.0.1"))
    store.apply(create(T0 + 1, "7701-234567", " 10.0.0.1 "))
    assert store.apply(create(T0 + 2, "7701234567", "10.0.0.1"))["created_2d"] == 3
    assert store.apply(create(T0 + 3, "7701234567", "10.0.0.2"))["created_2d"] == 1
    assert store.key_counts() == {"Client": 0, "EmployerAndIp": 2}


def test_evaluate_does_not_change_state(store: AggregateStore) -> None:
    store.apply(pay(T0, 10))
    assert store.evaluate(pay(T0 + 1, 5))["sum_2d"] == 15
    assert store.apply(pay(T0 + 1, 1))["sum_2d"] == 11


def test_retention_drops_expired_keys(store: AggregateStore) -> None:
    for i in range(50):
        store.apply(pay(T0, 1, client=f"c{i}"))
    # `devices` keeps the default 180-day horizon, so keys live that long.
    store.apply(pay(T0 + 100 * DAY, 1, client="fresh"))
    assert store.expire_all() == 0
    store.apply(pay(T0 + 181 * DAY, 1, client="fresh"))
    assert store.expire_all() == 50
    assert store.key_counts()["Client"] == 1


def test_snapshot_round_trip_then_replay_gives_identical_answers() -> None:
    defs = SEED_PACK.read_bytes()
    live = AggregateStore(defs)
    events = [
        json.dumps(
            {
                "common": {
                    "eventTime": T0 + i * 3_600_000,
                    "subtype": ["LOAN_APP_CREATE", "LOAN_APP_RESULT", "PAYMENT"][i % 3],
                    "partnerId": f"p{i % 2}",
                },
                "consumer": {"userId": f"u{i % 7}", "idDocumentNumber": f"4510{i % 11:06}"},
                "coBorrower": {"idDocumentNumber": f"99{i % 3}"},
                "employer": {"inn": f"77{i % 4}"},
                "device": {"ip": "1.2.3.4", "id": f"d{i % 5}"},
                "ext": {"requestResult": "REJECTED" if i % 4 == 0 else "APPROVED"},
                "tx": {"amount": i * 100, "currency": "RUB"},
            }
        ).encode()
        for i in range(120)
    ]
    answers = []
    snap = b""
    for i, ev in enumerate(events):
        if i == 70:
            snap = live.snapshot()
        answers.append(live.apply(ev))
    restored = AggregateStore.restore(defs, snap)
    assert [restored.apply(ev) for ev in events[70:]] == answers[70:]
    assert restored.key_counts() == live.key_counts()


def test_restore_refuses_other_versions_and_definitions(store: AggregateStore) -> None:
    store.apply(pay(T0, 1))
    snap = store.snapshot()
    newer = snap[:8] + b"\x07\x00" + snap[10:]
    with pytest.raises(InvalidArgumentError, match="version 7") as err:
        AggregateStore.restore(SEED_PACK.read_bytes(), newer)
    assert err.value.violations[0].field == "snapshot"
    with pytest.raises(InvalidArgumentError, match="different object definitions"):
        AggregateStore.restore(SEED_PACK.read_bytes(), snap)


@pytest.mark.parametrize(
    ("defs", "field"),
    [
        (
            {"objects": [{"name": "A", "key": [{"attr": "a"}], "elements": []}]},
            "objects[0].elements",
        ),
        (
            {
                "objects": [
                    {
                        "name": "A",
                        "key": [{"attr": "a"}],
                        "elements": [{"name": "e", "kind": "avg"}],
                    }
                ]
            },
            "objects[0].elements[0].kind",
        ),
        (
            {
                "objects": [
                    {
                        "name": "A",
                        "key": [{"attr": "a"}],
                        "elements": [
                            {"name": "e", "kind": "unique", "attr": "x", "filter_expr": "x > "}
                        ],
                    }
                ]
            },
            "objects[0].elements[0].filter_expr",
        ),
        (
            {"params": [{"fn": "ratio", "name": "r", "a": {"param": "nope"}, "b": {"value": 1}}]},
            "params[0].a.param",
        ),
        ({"retention_days": 0}, "retention_days"),
    ],
)
def test_bad_definitions_name_the_field(defs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        AggregateStore(defs)
    assert err.value.violations[0].field.startswith(field)


def test_bad_events_name_the_attribute(store: AggregateStore) -> None:
    store.apply(pay(T0 + 2 * DAY, 1))
    cases = [
        (b"{oops", "event"),
        (event(T0 + 2 * DAY, client={"id": "c1"}, amount="ten"), "amount"),
        (json.dumps({"client": {"id": "c1"}}).encode(), "t"),
        (event(-1, client={"id": "c1"}), "t"),
        (pay(T0, 1), "t"),  # older than the allowed lateness
    ]
    for ev, field in cases:
        with pytest.raises(InvalidArgumentError) as err:
            store.apply(ev)
        assert err.value.violations[0].field == field
    assert store.apply(pay(T0 + 2 * DAY, 1))["sum_before"] == 1


def test_seed_rule_pack_answers_rule_1_and_rule_11() -> None:
    store = AggregateStore(SEED_PACK.read_text())

    def app(t: int, phone: str, birthdate: str, passport: str) -> bytes:
        return json.dumps(
            {
                "common": {"eventTime": t, "subtype": "LOAN_APP_CREATE"},
                "consumer": {
                    "userId": "u1",
                    "fio": "Ivan Petrov",
                    "mobile": phone,
                    "birthdate": birthdate,
                    "idDocumentNumber": passport,
                },
            }
        ).encode()

    store.apply(app(T0, "+7 912 345-67-89", "1990-01-01", "4510 123456"))
    out = store.apply(app(T0 + 60_000, "89123456789", "1991-01-01", "4510 123465"))
    assert out["rule1_other_birth_dates"] == 1
    assert out["rule11_previous_passport"] == "4510 123456"
    mismatch = out["rule11_passport_mismatch_pct"]
    assert isinstance(mismatch, float)
    assert 0 < mismatch < 10


def test_parallel_threads_share_one_store(store: AggregateStore) -> None:
    def worker(k: int) -> None:
        for i in range(500):
            store.apply(pay(T0 + i, 1, client=f"c{k}-{i % 10}"))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.key_counts()["Client"] == 40
    assert store.evaluate(pay(T0 + 600, 0, client="c0-0"))["sum_before"] == 50


def test_bad_events_name_the_field_and_change_nothing(store: AggregateStore) -> None:
    store.apply(pay(T0, 10))
    before = store.snapshot()
    bad = [
        (event(T0 + 1, client={"id": "c1"}, amount="ten", device="d1"), "amount"),
        (event(T0 + 1, client={"id": ["c1"]}, amount=1), "client.id"),
        (event(T0 + 1, client={"id": "c1"}, amount=1, device="x" * 5000), "device"),
        (json.dumps({"t": "1900-01-01T00:00:00Z", "client": {"id": "c1"}}).encode(), "t"),
        (json.dumps({"t": 95_617_584_000_000, "client": {"id": "c1"}}).encode(), "t"),
        (json.dumps({"client": {"id": "c1"}}).encode(), "t"),
        (b"[]", "event"),
        (b"", "event"),
    ]
    for ev, field in bad:
        with pytest.raises(InvalidArgumentError) as err:
            store.apply(ev)
        assert err.value.violations[0].field == field, ev
    assert store.snapshot() == before


def test_protobuf_events_and_compare_fl() -> None:
    s = AggregateStore(
        {
            "time_attr": "event_time",
            "objects": [
                {
                    "name": "Partner",
                    "key": [{"attr": "partner_id", "kind": "text"}],
                    "elements": [{"name": "n", "kind": "count"}],
                }
            ],
            "params": [
                {
                    "fn": "calc_aggregate",
                    "name": "n",
                    "object": "Partner",
                    "element": "n",
                    "agg": "value",
                }
            ],
        }
    )
    msg = scoring_pb2.ApplicationEvent(
        partner_id="P1", event_time=Timestamp(seconds=T0 // 1000)
    ).SerializeToString()
    assert s.apply_proto("lendgate.v1.ApplicationEvent", msg) == {"n": 1}
    assert s.evaluate_proto("lendgate.v1.ApplicationEvent", msg) == {"n": 2}
    with pytest.raises(InvalidArgumentError):
        s.apply_proto("lendgate.v1.ApplicationEvent", b"\xff\xff\xff")
    assert compare_fl("4510123456", "4510123456") == 0.0
    assert 0 < compare_fl("4510123456", "4510123465") < 10


PROTO_DEFS = json.dumps(
    {
        "time_attr": "event_time",
        "objects": [
            {
                "name": "Applicant",
                "key": [{"attr": "applicant.client_id", "kind": "text"}],
                "elements": [
                    {"name": "n", "kind": "count"},
                    {
                        "name": "amounts",
                        "kind": "time_and_value",
                        "attr": "loan_amount.amount_minor",
                        "type": "integer",
                    },
                    {
                        "name": "passports",
                        "kind": "unique",
                        "attr": "applicant.passport.number",
                        "max_records": 10,
                    },
                ],
            }
        ],
        "params": [
            {
                "fn": "calc_aggregate",
                "name": "n",
                "object": "Applicant",
                "element": "n",
                "agg": "value",
            },
            {
                "fn": "calc_aggregate",
                "name": "total",
                "object": "Applicant",
                "element": "amounts",
                "agg": "sum",
            },
            {
                "fn": "calc_aggregate",
                "name": "other_passports",
                "object": "Applicant",
                "element": "passports",
                "agg": "count",
                "except": "value",
            },
        ],
    }
)


def application(
    seconds: int, client: str = "c1", amount: int = 500, passport: str = "4510123456"
) -> scoring_pb2.ApplicationEvent:
    msg = scoring_pb2.ApplicationEvent(
        application_id="a1",
        partner_id="P1",
        event_time=Timestamp(seconds=seconds),
        subtype=scoring_pb2.APPLICATION_SUBTYPE_LOAN_APP_CREATE,
    )
    msg.applicant.client_id = client
    msg.applicant.passport.number = passport
    msg.loan_amount.amount_minor = amount
    msg.loan_amount.currency = "RUB"
    return msg


def test_protobuf_events_read_only_the_needed_fields_as_the_document_would() -> None:
    s = AggregateStore(PROTO_DEFS)
    name = "lendgate.v1.ApplicationEvent"
    first = application(T0 // 1000).SerializeToString()
    assert s.apply_proto(name, first) == {"n": 1, "total": 500, "other_passports": 0}
    # Two messages back to back merge (protobuf semantics): the later passport wins.
    later = application(T0 // 1000 + 60, passport="4510999999").SerializeToString()
    merged = first + later
    assert s.apply_proto(name, merged) == {"n": 2, "total": 1000, "other_passports": 1}
    # The same event as JSON answers the same (the proto document's field names).
    doc = {
        "event_time": T0 + 120_000,
        "applicant": {"client_id": "c1", "passport": {"number": "4510123456"}},
        "loan_amount": {"amount_minor": 500},
    }
    assert s.evaluate(json.dumps(doc).encode()) == s.evaluate_proto(
        name, application(T0 // 1000 + 120).SerializeToString()
    )


def test_bad_input_through_every_entry_point_is_refused_and_changes_nothing() -> None:
    s = AggregateStore(PROTO_DEFS)
    name = "lendgate.v1.ApplicationEvent"
    s.apply_proto(name, application(T0 // 1000).SerializeToString())
    before = s.snapshot()
    good = application(T0 // 1000 + 1).SerializeToString()
    bad_proto = [
        (application(-2_208_988_800).SerializeToString(), "event_time"),  # 1900-01-01
        (application(7_258_118_400).SerializeToString(), "event_time"),  # 2200-01-01
        (application(T0 // 1000 + 1, client="x" * 5000).SerializeToString(), "applicant.client_id"),
        (
            application(T0 // 1000 + 1, passport="9" * 5000).SerializeToString(),
            "applicant.passport.number",
        ),
        # applicant.client_id with invalid UTF-8, applicant (field 10) sent as a varint,
        # a length that runs past the end.
        (good + b"\x52\x04\x0a\x02\xff\xfe", "request"),
        (good + b"\x50\x01", "request"),
        (good + b"\x52\x7f\x01", "request"),
        (b"\xff\xff\xff", "request"),
    ]
    for data, field in bad_proto:
        with pytest.raises(InvalidArgumentError) as err:
            s.apply_proto(name, data)
        assert err.value.violations[0].field == field, data[:40]
    bad_json = [
        (b'{"event_time": 1709251200001, "applicant": {"client_id": "\xff"}}', "event"),
        (b'{"event_time": 1709251200001, "x": "\\ud800"}', "event"),
        (b'{"event_time": 1e999}', "event"),
        (b'{"a": ' * 10_000 + b"1" + b"}" * 10_000, "event"),
        (json.dumps({"event_time": 1.5e12}).encode(), "event_time"),
        (json.dumps({"event_time": True}).encode(), "event_time"),
        (
            json.dumps(
                {
                    "event_time": T0 + 1,
                    "applicant": {"client_id": "c1"},
                    "loan_amount": {"amount_minor": 1.5},
                }
            ).encode(),
            "loan_amount.amount_minor",
        ),
        (
            json.dumps(
                {
                    "event_time": T0 + 1,
                    "applicant": {"client_id": {"id": "c1"}},
                }
            ).encode(),
            "applicant.client_id",
        ),
    ]
    for data, field in bad_json:
        with pytest.raises(InvalidArgumentError) as err:
            s.apply(data)
        assert err.value.violations[0].field == field, data[:40]
    assert s.snapshot() == before
    assert s.apply_proto(name, good)["n"] == 2
