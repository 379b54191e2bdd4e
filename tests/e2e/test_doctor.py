"""`tunedeck doctor`: one line per check, ok / warn / fail with the fix; exit 1 on any fail; never a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT, tunedeck

NAMES = {"python", "torch", "bf16", "bitsandbytes", "llama-cpp-python", "accelerate", "disk: runs", "disk: hf cache", "hf hub",
         "hf token"}  # fmt: skip


def test_doctor_json_shape_and_a_passing_machine(tmp_path: Path) -> None:
    proc = tunedeck("doctor", "--json", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    result = json.loads(proc.stdout)
    assert set(result) == {"ok", "checks"} and proc.returncode == (0 if result["ok"] else 1)
    names = {c["name"] for c in result["checks"]}
    assert NAMES <= names and any(n.startswith("gpu") for n in names)
    for c in result["checks"]:
        assert set(c) == {"name", "status", "detail", "fix"} and c["status"] in ("ok", "warn", "fail")
        assert c["status"] == "ok" or c["fix"], c  # every warn or fail says what to do
    by_name = {c["name"]: c for c in result["checks"]}
    assert "quantized kernels run on this CPU" in by_name["llama-cpp-python"]["detail"]
    text = tunedeck("doctor", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path).stdout
    assert all(line.split()[0] in ("ok", "warn", "fail", "fix:") for line in text.splitlines() if line.strip())


def test_a_broken_install_fails_with_exit_1_and_a_token_is_never_printed(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "llama_cpp"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('libllama.so: cannot open shared object file')\n")
    secret = "hf_doctorTestSecretValue123"
    env = {**os.environ, "PYTHONPATH": f"{shadow.parent}{os.pathsep}{ROOT}", "HF_TOKEN": secret}
    proc = subprocess.run([sys.executable, "-m", "tunedeck.tui.cli.main", "doctor", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    llama = next(c for c in result["checks"] if c["name"] == "llama-cpp-python")
    assert not result["ok"] and llama["status"] == "fail" and "libllama.so" in llama["detail"] and llama["fix"]
    token = next(c for c in result["checks"] if c["name"] == "hf token")
    assert token["detail"].startswith("configured (HF_TOKEN)")
    assert secret not in proc.stdout + proc.stderr


def test_the_doctor_panel_shows_the_same_checks_from_the_palette(tmp_path: Path, monkeypatch) -> None:
    from textual.widgets import Static

    from tests.helpers import drive, settle
    from tunedeck.tui.app import TunedeckApp
    from tunedeck.tui.screens.doctor import DoctorScreen

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    app = TunedeckApp(workspace=tmp_path)

    async def steps(pilot) -> None:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"doctor")
        await pilot.pause(0.3)
        await pilot.press("enter")
        for _ in range(300):  # the checks run in a thread (torch import, a llama.cpp child process)
            await pilot.pause(0.2)
            if isinstance(app.screen, DoctorScreen) and app.screen.result is not None:
                break
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DoctorScreen) and screen.result is not None
        text = str(screen.query_one("#doctor-lines", Static).content)
        assert "llama-cpp-python" in text and "bitsandbytes" in text and "disk: runs" in text
        assert {c["name"] for c in screen.result["checks"]} >= NAMES
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, DoctorScreen)

    drive(app, steps, size=(100, 30))
