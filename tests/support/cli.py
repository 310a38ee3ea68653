"""Running `auditwatch` as a user does: the result of a command, and a real interpreter for process-level tests.

Most command tests call `auditwatch.cli.main` in-process (the `run_cli` fixture); `auditwatch_process` is for
what only a process shows: the interpreter's exit status, a real stdin pipe.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import PYTHON, ROOT


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str


RunCli = Callable[..., CliRun]  # the `run_cli` fixture: `auditwatch.cli.main(ARGS)` in this process


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a subprocess under test: no AUDITWATCH_* settings leak in from the shell or CI."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITWATCH_")}
    env.update(extra or {})
    return env


def auditwatch_process(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> CliRun:
    """`python -m auditwatch.cli ARGS` in a fresh interpreter, without AUDITWATCH_* settings from the shell."""
    done = subprocess.run([PYTHON, "-m", "auditwatch.cli", *args], input=stdin, capture_output=True, timeout=120,
                          cwd=cwd, env=clean_env(env), check=False)  # fmt: skip
    return CliRun(done.returncode, done.stdout.decode(), done.stderr.decode())
