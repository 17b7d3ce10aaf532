"""Fixtures of the training tests (helpers in train_helpers.py)."""

from pathlib import Path

import pytest
from train_helpers import make_dataset, make_shards


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds"))


@pytest.fixture(scope="session")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.mktemp("shards"))
