"""Synthetic lending data: applicants, their applications, payments and outcomes, with
planted fraud patterns and ground-truth labels (``lendgate gen-data``, docs/DATA.md)."""

from lendgate.datagen.generator import PATTERNS, GenConfig, GeneratedEvent, Generator, generate
from lendgate.datagen.output import Record, read_events, write_events

__all__ = [
    "PATTERNS",
    "GenConfig",
    "GeneratedEvent",
    "Generator",
    "Record",
    "generate",
    "read_events",
    "write_events",
]
