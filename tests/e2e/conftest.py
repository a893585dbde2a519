"""Markers of the end-to-end tests."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: over a minute (installs into a fresh venv); still part of `make test`"
    )
