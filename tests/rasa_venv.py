"""Running a piece of test code under Rasa's own Python (.venv-rasa), for the bot/ modules that
import Rasa (the tests themselves run in the other environment)."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RASA_PY = ROOT / ".venv-rasa" / "bin" / "python"


def start(script: Path, code: str, *args: str, **env: str) -> subprocess.Popen:
    script.write_text(code, encoding="utf-8")
    return subprocess.Popen([str(RASA_PY), str(script), *args], cwd=ROOT, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen, timeout: float = 180) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out.strip()


def run(script: Path, code: str, *args: str, **env: str) -> str:
    return finish(start(script, code, *args, **env))
