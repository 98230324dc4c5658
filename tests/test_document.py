"""Protobuf events become the documents rule expressions read (decoded in Rust)."""

import pytest
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from lendgate import CompiledExpression, InvalidArgumentError, NotFoundError
from lendgate.document import decode_document
from lendgate.v1 import common_pb2, scoring_pb2


def application() -> scoring_pb2.ApplicationEvent:
    attributes = Struct()
    attributes.update({"segment": "gold", "bki_score": 712})
    return scoring_pb2.ApplicationEvent(
        application_id="app-1",
        partner_id="bank-a",
        subtype=scoring_pb2.APPLICATION_SUBTYPE_LOAN_APP_CREATE,
        event_time=Timestamp(seconds=1_763_806_500),
        loan_amount=common_pb2.Money(amount_minor=9_007_199_254_740_993, currency="RUB"),
        applicant=common_pb2.Person(
            last_name="Petrov",
            birth_date="1990-04-01",
            phones=[common_pb2.Phone(number="+79123456789")],
        ),
        attributes=attributes,
    )


def test_document_uses_proto_names_and_short_enum_names() -> None:
    doc = decode_document("lendgate.v1.ApplicationEvent", application().SerializeToString())
    assert doc["subtype"] == "LOAN_APP_CREATE"
    assert doc["event_time"] == "2025-11-22T10:15:00Z"
    assert doc["applicant"]["phones"] == [{"number": "+79123456789"}]
    assert doc["attributes"] == {"segment": "gold", "bki_score": 712}
    assert "middle_name" not in doc["applicant"]


def test_int64_money_is_exact() -> None:
    doc = decode_document("lendgate.v1.ApplicationEvent", application().SerializeToString())
    assert doc["loan_amount"] == {"amount_minor": 9_007_199_254_740_993, "currency": "RUB"}


def test_a_rule_condition_reads_the_decoded_event() -> None:
    doc = decode_document("lendgate.v1.ApplicationEvent", application().SerializeToString())
    rule = CompiledExpression.compile(
        'application.subtype == "LOAN_APP_CREATE" and application.attributes.bki_score > 700'
    )
    assert rule.evaluate({"application": doc}) is True


def test_bad_bytes_and_unknown_types_are_clear_errors() -> None:
    with pytest.raises(InvalidArgumentError, match=r"not a valid lendgate\.v1\.ApplicationEvent"):
        decode_document("lendgate.v1.ApplicationEvent", b"\x0a\x64\x01")
    with pytest.raises(NotFoundError, match=r"lendgate\.v1\.Nope"):
        decode_document("lendgate.v1.Nope", b"")
