"""Per-device NVML figures (memory, utilization, temperature, power) and host RAM, sampled in a thread."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from tunedeck.tui.messages import GpuSampled
from tunedeck.tui.workers import background

GIB = 2**30
SAMPLE_SECONDS = 2.0


def host_ram() -> tuple[int, int]:
    """(used, total) bytes of host memory."""
    import psutil

    vm = psutil.virtual_memory()
    return vm.total - vm.available, vm.total


def sample_gpus() -> tuple[list[dict[str, Any]], str]:
    """(devices, note): NVML's devices, or none and why."""
    from tunedeck.engine.gpu import nvml_status, sample_gpus

    try:
        devices = sample_gpus()
    except Exception as e:  # a flaky driver must not end the panel
        return [], f"NVML read failed: {e}"
    return devices, "" if devices else nvml_status()


def gpu_lines(devices: list[dict[str, Any]], ram_used: int, ram_total: int, note: str = "") -> list[str]:
    """One line per device and one for host RAM; a plain note when NVML sees no GPU."""
    lines = []
    for d in devices:
        parts = [f"GPU{d.get('index', '?')} {d.get('name', '')}".rstrip()]
        parts.append(f"mem {d['memory_used_mib'] / 1024:.1f}/{d['memory_total_mib'] / 1024:.1f} GiB")
        for key, fmt in (("utilization_pct", "util {:.0f}%"), ("temperature_c", "{:.0f}°C"), ("power_w", "{:.0f} W")):
            if d.get(key) is not None:
                parts.append(fmt.format(d[key]))
        lines.append("  ".join(parts))
    if not devices:
        lines.append(note or "no NVIDIA GPU (NVML not available)")
    if ram_total:
        lines.append(f"host RAM {ram_used / GIB:.1f}/{ram_total / GIB:.1f} GiB")
    return lines


class GpuPanel(Static):
    """Shows the latest GPU and host-RAM sample; samples itself every SAMPLE_SECONDS."""

    def on_mount(self) -> None:
        self.border_title = "GPU"
        self.update("sampling NVML...")
        self._sample()
        self.set_interval(SAMPLE_SECONDS, self._sample)

    @background("gpu", exclusive=True)
    def _sample(self) -> None:
        devices, note = sample_gpus()
        used, total = host_ram()
        self.post_message(GpuSampled(devices, used, total, note))

    def on_gpu_sampled(self, message: GpuSampled) -> None:
        self.update("\n".join(gpu_lines(message.devices, message.ram_used, message.ram_total, message.note)))
