"""Where the operator tools find their own files (the locustfiles and the
targets, shipped inside the package so that an installed wheel has them),
and a free port on 127.0.0.1."""

from __future__ import annotations

import socket
from importlib import resources
from pathlib import Path

# The load shapes: one locustfile each in `locustfiles/`.
SHAPES = ("any_to_any", "fan_in_hot", "authorize_capture", "read_mix", "replays", "bulk")


def package_file(*parts: str) -> Path:
    """A file shipped with `ledger.ops` (in a wheel or a checkout alike)."""
    return Path(str(resources.files("ledger.ops").joinpath(*parts)))


def locustfiles() -> Path:
    return package_file("locustfiles")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The drills: what fails (described in `ledger.ops.drill`).
SCENARIOS = ("service-kill", "db-primary-kill", "db-restart", "conn-reset", "standby-kill")
