"""Where the repository's own files are, for the tests that read them (docs, sources)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def unit_tests() -> list[Path]:
    """Every unit-test module, of every service and of ``shared``."""
    return sorted((ROOT / "tests").glob("*/unit/test_*.py"))
