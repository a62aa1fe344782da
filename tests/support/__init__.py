"""Helpers and fixtures the test packages share: servers, databases, staff, sockets, browser,
provider stubs and waiting on a condition. Conftests import from here; nothing here is a test."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
"""The repository's top folder."""
