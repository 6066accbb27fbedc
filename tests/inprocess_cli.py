"""The `robotaxi` command run inside the test process, as a subprocess would report it.

A fresh interpreter spends some 1.7 s importing the simulation before `simulate` can reject a
bad city; in the test process those modules are loaded once for all tests. conftest's
`cli_main` fixture hands tests the runner below.
"""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from robotaxi.cli.main import main

RunCli = Callable[..., subprocess.CompletedProcess[str]]

# what a fresh interpreter hides by default (outside __main__); it prints every other warning
_HIDDEN_BY_DEFAULT = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def in_process_runner(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> RunCli:
    """`run(*args, cwd=…)`: what `sys.exit(main(args))` would exit with, and the stdout and
    stderr the process would have written (file-descriptor level, warnings included)."""

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        monkeypatch.chdir(cwd)
        capfd.readouterr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            for category in _HIDDEN_BY_DEFAULT:
                warnings.filterwarnings("ignore", category=category)
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's errors exit from inside main
                code = exc.code if isinstance(exc.code, int) else 1
        out, err = capfd.readouterr()
        err += "".join(
            warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
            for w in caught
        )
        return subprocess.CompletedProcess(["robotaxi", *args], code, out, err)

    return run
