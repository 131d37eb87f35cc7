"""Shared fixtures: paths to bundled test data."""
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir():
    return DATA
