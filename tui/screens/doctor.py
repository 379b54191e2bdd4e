"""The Doctor panel: `tunedeck doctor` in the TUI (command palette: "Doctor"), checked in a thread."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tunedeck.tui.messages import DoctorChecked
from tunedeck.tui.workers import background


class DoctorScreen(ModalScreen[None]):
    """One line per check (ok / warn / fail, with the fix); escape closes."""

    BINDINGS = [Binding("escape,q", "dismiss", "Close", id="doctor-close", tooltip="Close the doctor's report")]

    def __init__(self, runs_dir: Path) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        self.result: dict | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("checking this machine (torch, GPUs, bitsandbytes, llama.cpp, disk, Hub)...", id="doctor-lines",
                         markup=False)  # fmt: skip
            yield Static("escape: close   (the same as `tunedeck doctor`)", classes="hint")

    def on_mount(self) -> None:
        self._check()

    @background("doctor", exclusive=True)
    def _check(self) -> None:
        from tunedeck.engine.doctor import lines, report, run_checks

        checks = run_checks(self.runs_dir)
        result = report(checks)
        head = "all checks pass" if result["ok"] else "some checks FAIL: see the fixes"
        self.post_message(DoctorChecked(result, "\n".join([head, "", *lines(checks)])))

    def on_doctor_checked(self, message: DoctorChecked) -> None:
        self.result = message.result
        self.query_one("#doctor-lines", Static).update(message.text)
