"""Tests of lendgate.lists (Rust: core_rs/lendgate-core/src/lists.rs)."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from lendgate.errors import AbortedError, AlreadyExistsError, NotFoundError
from lendgate.lists import ListDefinition, ListEntry, ListEntryKind, Lists, ListType

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def lists() -> Lists:
    return Lists(clock=lambda: NOW)


def make(lists: Lists, list_id: str, kind: ListEntryKind, **kw: object) -> ListDefinition:
    return lists.create(
        ListDefinition(list_id, kind, ListType.BLACK, **kw),  # type: ignore[arg-type]
        author="alice",
        reason="test",
    )


def test_create_get_and_duplicates(lists: Lists) -> None:
    d = make(lists, "bad-phones", ListEntryKind.PHONE, display_name="Bad phones")
    assert d.version == 1
    assert d.update_author == "alice"
    assert lists.get("bad-phones").display_name == "Bad phones"
    with pytest.raises(AlreadyExistsError):
        make(lists, "bad-phones", ListEntryKind.PHONE)
    with pytest.raises(NotFoundError):
        lists.get("nope")


def test_values_are_normalised_by_kind(lists: Lists) -> None:
    make(lists, "phones", ListEntryKind.PHONE)
    make(lists, "passports", ListEntryKind.PASSPORT)
    lists.add_entries("phones", [ListEntry("+7 (912) 345-67-89")], author="a")
    lists.add_entries("passports", [ListEntry("45 06 123456")], author="a")
    assert lists.contains("phones", "89123456789", NOW)
    assert lists.contains("passports", "4506-123456", NOW)
    assert not lists.contains("phones", "89123456780", NOW)
    assert [e.value for e in lists.entries("phones")] == ["79123456789"]


def test_invalid_values_are_rejected_one_by_one(lists: Lists) -> None:
    make(lists, "inn", ListEntryKind.TAX_ID)
    result = lists.add_entries("inn", [ListEntry("7701234567"), ListEntry("12")], author="a")
    assert (result.added, result.replaced) == (1, 0)
    assert result.rejected[0][0] == 1
    assert "10 to 12 digits" in result.rejected[0][1]


def test_expiry_is_by_event_time(lists: Lists) -> None:
    make(lists, "ips", ListEntryKind.IP)
    expires = NOW + timedelta(days=1)
    lists.add_entries("ips", [ListEntry("10.0.0.0/8", expire_time=expires)], author="a")
    assert lists.contains("ips", "10.1.2.3", expires - timedelta(seconds=1))
    assert not lists.contains("ips", "10.1.2.3", expires)
    assert lists.entry_count("ips", NOW) == 1
    assert lists.entry_count("ips", expires) == 0


def test_default_ttl_applies_to_entries_without_expiry(lists: Lists) -> None:
    make(lists, "devices", ListEntryKind.DEVICE, default_entry_ttl=timedelta(hours=1))
    lists.add_entries("devices", [ListEntry("IMEI-1")], author="a")
    assert lists.contains("devices", "imei-1", NOW + timedelta(minutes=59))
    assert not lists.contains("devices", "imei-1", NOW + timedelta(hours=1))


def test_replace_remove_and_paging(lists: Lists) -> None:
    make(lists, "s", ListEntryKind.STRING)
    lists.add_entries("s", [ListEntry(v) for v in "edcba"], author="a")
    assert [e.value for e in lists.entries("s", limit=2)] == ["a", "b"]
    assert [e.value for e in lists.entries("s", after="c")] == ["d", "e"]
    assert lists.remove_entries("s", ["A", "zz"]) == 1
    lists.add_entries("s", [ListEntry("x")], author="a", replace_all=True)
    assert [e.value for e in lists.entries("s")] == ["x"]


def test_update_and_delete_check_the_etag(lists: Lists) -> None:
    d = make(lists, "s", ListEntryKind.STRING)
    with pytest.raises(AbortedError):
        lists.update(d, etag="v0", author="b")
    d2 = lists.update(
        ListDefinition("s", ListEntryKind.STRING, ListType.GREY, description="x"),
        etag=d.etag,
        author="b",
        reason="recolour",
    )
    assert (d2.version, d2.type, d2.change_reason) == (2, ListType.GREY, "recolour")
    lists.delete("s", etag=d2.etag)
    with pytest.raises(NotFoundError):
        lists.contains("s", "x", NOW)


def test_bulk_load_of_a_million_lines(lists: Lists) -> None:
    make(lists, "phones", ListEntryKind.PHONE)
    text = "".join(f"+7 912 {i:07d}\n" for i in range(1_000_000)).encode()
    start = time.perf_counter()
    result = lists.load_lines("phones", text + b"bad\n", author="import")
    elapsed = time.perf_counter() - start
    assert result.added == 1_000_000
    assert result.rejected[0][0] == 1_000_000
    assert lists.contains("phones", "89120999999", NOW)
    assert elapsed < 10, f"bulk load took {elapsed:.1f} s"
