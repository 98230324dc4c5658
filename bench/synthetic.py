"""Synthetic application events for the restart bench and the recovery test.

Every event ``i`` has parameters drawn from small key spaces (so keys repeat and the
aggregates hold real state). The same parameters give the serialized
``lendgate.v1.ApplicationEvent`` stored as the payload, and, directly, the seed-003 JSON
document that :func:`seed003_document` maps the decoded payload to (the restart bench
builds the snapshot from the direct form: 10 million protobuf round trips would take hours).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from lendgate.v1 import common_pb2, scoring_pb2

BASE_S = 1_763_806_500  # 2025-11-22T10:15:00Z
SUBTYPES = ("LOAN_APP_CREATE", "LOAN_APP_BKI_CHECK", "LOAN_APP_SPECIAL_CHECK", "LOAN_APP_RESULT")


def params(i: int, spacing_ms: int = 100) -> dict[str, Any]:
    """The parameters of event ``i`` (deterministic)."""
    return {
        "time_s": BASE_S + i * spacing_ms // 1000,
        "subtype": SUBTYPES[(i * 7) % 4],
        "partner": f"p{i % 20}",
        "last": f"L{(i * 31) % 300_000}",
        "first": f"F{i % 97}",
        "phone": f"+7912{(i * 13) % 1_000_000:07d}",
        "birth": f"1990-01-{i % 28 + 1:02d}",
        "series": f"{(i * 17) % 90 + 10:02d}",
        "number": f"{(i * 29) % 500_000:06d}",
        "client": f"u{(i * 11) % 400_000}",
        "inn": f"77{(i * 3) % 100_000:08d}",
        "ip": f"10.0.{i % 256}.{(i // 256) % 250}",
    }


def payload(p: dict[str, Any]) -> bytes:
    """The serialized ``ApplicationEvent`` of the parameters."""
    return scoring_pb2.ApplicationEvent(
        application_id=f"app-{p['client']}-{p['time_s']}",
        partner_id=p["partner"],
        subtype=getattr(scoring_pb2, "APPLICATION_SUBTYPE_" + p["subtype"]),
        event_time=Timestamp(seconds=p["time_s"]),
        ip_address=p["ip"],
        applicant=common_pb2.Person(
            client_id=p["client"],
            last_name=p["last"],
            first_name=p["first"],
            birth_date=p["birth"],
            passport=common_pb2.Passport(series=p["series"], number=p["number"]),
            phones=[common_pb2.Phone(number=p["phone"])],
            employer=common_pb2.Employer(tax_id=p["inn"]),
        ),
    ).SerializeToString()


def direct_document(p: dict[str, Any]) -> bytes:
    """The seed-003 document of the parameters, built without protobuf."""
    return _dumps(
        {
            "common": {
                "eventTime": p["time_s"] * 1000,
                "subtype": p["subtype"],
                "partnerId": p["partner"],
            },
            "consumer": {
                "fio": f"{p['last']} {p['first']}",
                "mobile": p["phone"],
                "birthdate": p["birth"],
                "idDocumentNumber": p["series"] + p["number"],
                "userId": p["client"],
            },
            "employer": {"inn": p["inn"]},
            "device": {"ip": p["ip"]},
        }
    )


def seed003_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A provisional mapping of a decoded ``ApplicationEvent`` to seed-003 attributes.

    The scoring service will own the real mapping; this one covers what the synthetic
    events carry.
    """
    applicant = doc.get("applicant", {})
    phones = applicant.get("phones") or [{}]
    passport = applicant.get("passport", {})
    seconds = _epoch_s(doc["event_time"])
    return {
        "common": {
            "eventTime": seconds * 1000,
            "subtype": doc.get("subtype", ""),
            "partnerId": doc.get("partner_id", ""),
        },
        "consumer": {
            "fio": f"{applicant.get('last_name', '')} {applicant.get('first_name', '')}",
            "mobile": phones[0].get("number", ""),
            "birthdate": applicant.get("birth_date", ""),
            "idDocumentNumber": passport.get("series", "") + passport.get("number", ""),
            "userId": applicant.get("client_id", ""),
        },
        "employer": {"inn": applicant.get("employer", {}).get("tax_id", "")},
        "device": {"ip": doc.get("ip_address", "")},
    }


def probes(count: int = 8) -> list[bytes]:
    """Query documents whose answers (``evaluate``) compare two states."""
    return [direct_document(params(i * 977)) for i in range(count)]


def _epoch_s(rfc3339: str) -> int:
    return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp())


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
