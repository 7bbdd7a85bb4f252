from __future__ import annotations

from pathlib import Path

import pytest
from sqs_fake_glue import write_query_model


@pytest.fixture(scope="session")
def query_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_query_model(tmp_path_factory.mktemp("botocore-data"))
