"""NVML sampling through nvidia-ml-py; an empty list (never an error) where there is no NVIDIA GPU."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _nvml() -> Any | None:
    """The initialised pynvml module, or None when there is no NVIDIA driver or GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ImportError...
        return None


def nvml_status() -> str:
    """One line for the UI: how many GPUs NVML sees, or why none."""
    nvml = _nvml()
    if nvml is None:
        return "no NVIDIA GPU (NVML not available)"
    return f"{nvml.nvmlDeviceGetCount()} NVIDIA GPU(s), driver {nvml.nvmlSystemGetDriverVersion()}"


def sample_gpus() -> list[dict[str, Any]]:
    """Memory used/total (MiB), utilization %, temperature °C and power W for every device."""
    nvml = _nvml()
    if nvml is None:
        return []
    devices = []
    for i in range(nvml.nvmlDeviceGetCount()):
        h = nvml.nvmlDeviceGetHandleByIndex(i)
        mem = nvml.nvmlDeviceGetMemoryInfo(h)
        sample: dict[str, Any] = {
            "index": i,
            "name": nvml.nvmlDeviceGetName(h),
            "memory_used_mib": mem.used / 2**20,
            "memory_total_mib": mem.total / 2**20,
        }
        for key, read in (
            ("utilization_pct", lambda h=h: nvml.nvmlDeviceGetUtilizationRates(h).gpu),
            ("temperature_c", lambda h=h: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)),
            ("power_w", lambda h=h: nvml.nvmlDeviceGetPowerUsage(h) / 1000),
        ):
            try:
                sample[key] = read()
            except nvml.NVMLError:  # not supported on every board
                sample[key] = None
        devices.append(sample)
    return devices
