"""Optional py-spy flame graph of one process while it is measured (``--profile``)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

from bench.stack import REPO, Process, Stack


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def start(stack: Stack, target: Process) -> tuple[Process, Path] | None:
    """``py-spy record`` of ``target`` into ``bench-profile-<label>.svg``; None without py-spy."""
    binary = py_spy()
    if binary is None:
        print("  --profile: py-spy is not installed (pip install -e '.[bench]'); skipped")
        return None
    output = REPO / f"bench-profile-{target.label}.svg"
    argv = [binary, "record", "-o", str(output), "--pid", str(target.pid), "--rate", "100"]
    return stack.start_process(f"py-spy-{target.label}", argv, {}), output


def stop(profiler: tuple[Process, Path] | None) -> None:
    """SIGINT makes py-spy write its flame graph; then wait for it (by its PID)."""
    if profiler is None:
        return
    process, output = profiler
    if process.alive():
        process.popen.send_signal(signal.SIGINT)
        try:
            process.popen.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.stop()
    if output.exists():
        print(f"  profile written: {output}")
    else:
        print(f"  py-spy wrote no profile; its log:\n{process.log_tail()}")
