"""Settings of a node: defaults, then a TOML file, then environment, then flags.

Every setting has the same name in all four places: ``data_dir`` is ``data_dir = ...``
in the TOML file, ``CONVEYOR_DATA_DIR`` in the environment and ``--data-dir`` on the
command line. Later sources win.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from conveyor import limits

ENV_PREFIX = "CONVEYOR_"


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    data_dir: str = "./conveyor-data"
    host: str = "127.0.0.1"
    port: int = 9324  # HTTP: SQS API, admin API, metrics, health, console
    native_port: int = 9325  # native binary protocol
    fsync: Literal["always", "interval", "never"] = "always"
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"
    account_id: str = "000000000000"  # the SQS account when the access key names none
    region: str = "us-east-1"  # the SQS region when a request is not signed
    shutdown_grace_s: float = 10.0
    native_max_frame_bytes: int = 16 * 1024 * 1024
    # SQS access key id -> secret key. Empty: any credentials are accepted (local mode);
    # else SigV4 signatures are verified. A 12-digit key id names the caller's account.
    sqs_access_keys: dict[str, str] = msgspec.field(default_factory=dict)
    # cluster mode: etcd endpoints as etcd://HOST:PORT[,HOST:PORT...]; empty: one node
    cluster: str = ""
    node_id: str = ""  # default: the node id kept in the data directory
    advertise: str = ""  # host other nodes and clients reach this node at (default: host)
    replication_factor: int = 3
    min_insync: int = 2
    lease_ttl_ms: int = 3_000
    replace_after_s: float = 60.0  # a node gone this long has its replicas replaced
    # µs the event loop looks for I/O before it sleeps (conveyor.server.busy_poll); 0: off
    busy_poll_us: Annotated[int, msgspec.Meta(ge=0, le=limits.busy_poll_us_max)] = 0


FIELDS = {name: Settings.__annotations__[name] for name in Settings.__struct_fields__}


def _coerce(name: str, value: Any) -> Any:
    default = getattr(Settings(), name)
    if isinstance(value, str) and isinstance(default, dict):
        # KEY:VALUE,KEY2:VALUE2 (environment variables and flags)
        pairs = [item.split(":", 1) for item in value.split(",") if item.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"{name} takes KEY:VALUE pairs separated by commas")
        return {k.strip(): v.strip() for k, v in pairs}
    if isinstance(value, str) and isinstance(default, bool):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(value, str) and isinstance(default, int):
        return int(value)
    if isinstance(value, str) and isinstance(default, float):
        return float(value)
    return value


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge the sources; raise ValueError naming the bad setting."""
    data: dict[str, Any] = {}
    if config_file is not None:
        with Path(config_file).open("rb") as f:
            loaded = tomllib.load(f)
        table = loaded.get("conveyor", loaded)
        data.update(table)
    env = os.environ if environ is None else environ
    for name in Settings.__struct_fields__:
        value = env.get(ENV_PREFIX + name.upper())
        if value is not None:
            data[name] = value
    for name, value in (flags or {}).items():
        if value is not None:
            data[name] = value
    unknown = set(data) - set(Settings.__struct_fields__)
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    try:
        return msgspec.convert({k: _coerce(k, v) for k, v in data.items()}, Settings)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ValueError(f"bad setting: {exc}") from None
