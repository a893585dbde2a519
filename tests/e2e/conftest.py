"""Temporary directories of the end-to-end tests."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import scratch_dir


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Not under pytest's own temp root, where `minqing up` keeps PostgreSQL data (see
    ``scratch_dir``)."""
    with scratch_dir("minqing-e2e-") as path:
        yield path
