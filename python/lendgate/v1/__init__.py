"""Generated from proto/lendgate/v1 — do not edit."""
