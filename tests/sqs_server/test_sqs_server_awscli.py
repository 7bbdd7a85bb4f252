"""aws-cli (``aws sqs ... --endpoint-url``) against the running server."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqs_server_helpers import qname

AWS = Path(sys.executable).with_name("aws")
pytestmark = pytest.mark.skipif(
    not AWS.exists() and shutil.which("aws") is None, reason="aws-cli is not installed"
)


def aws(server: Any, tmp_path: Path, *args: str, check: bool = True) -> Any:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIDCLI",
        "AWS_SECRET_ACCESS_KEY": "cli-secret",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_PAGER": "",
    }
    cmd = [str(AWS) if AWS.exists() else "aws", "sqs", *args]
    cmd += ["--endpoint-url", server.url, "--output", "json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    if not check:
        return proc
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def test_aws_cli_round_trip(server: Any, tmp_path: Path) -> None:
    # each aws-cli run costs a second or two of start-up: few calls, the error one aside
    with ThreadPoolExecutor(1) as pool:
        missing = pool.submit(
            aws, server, tmp_path, "get-queue-url", "--queue-name", qname("never"), check=False
        )
        name = qname("cli")
        url = aws(server, tmp_path, "create-queue", "--queue-name", name,
                  "--attributes", "VisibilityTimeout=40")["QueueUrl"]  # fmt: skip
        assert url == f"{server.url}/000000000000/{name}"
        sent = aws(server, tmp_path, "send-message", "--queue-url", url,
                   "--message-body", "from the cli",
                   "--message-attributes", '{"kind": {"DataType": "String", "StringValue": "cli"}}')  # fmt: skip
        assert sent["MD5OfMessageBody"] == hashlib.md5(b"from the cli").hexdigest()
        got = aws(server, tmp_path, "receive-message", "--queue-url", url,
                  "--message-attribute-names", "All", "--attribute-names", "All")  # fmt: skip
        (message,) = got["Messages"]
        assert message["Body"] == "from the cli"
        assert message["MessageAttributes"]["kind"]["StringValue"] == "cli"
        assert message["Attributes"]["SenderId"] == "AKIDCLI"
        aws(server, tmp_path, "delete-message", "--queue-url", url, "--receipt-handle",
            message["ReceiptHandle"])  # fmt: skip
        attrs = aws(server, tmp_path, "get-queue-attributes", "--queue-url", url,
                    "--attribute-names", "All")["Attributes"]  # fmt: skip
        assert attrs["VisibilityTimeout"] == "40"
        assert attrs["ApproximateNumberOfMessages"] == "0"
        assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
        assert attrs["QueueArn"] == f"arn:aws:sqs:us-west-2:000000000000:{name}"
        failed = missing.result()
    assert failed.returncode != 0
    assert "NonExistentQueue" in failed.stderr or "QueueDoesNotExist" in failed.stderr
