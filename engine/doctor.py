"""``tunedeck doctor``: what this machine can do, one line per check, each ok / warn / fail with the fix.

The first questions on a GPU box (is torch the CUDA build, does bitsandbytes see the GPU, does NVML work, is
llama-cpp-python built with CUDA and can its kernels run on this CPU, how much disk is free) answered in one place
instead of mid-run. Never prints a secret: for the Hub token only whether one is configured and where from.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

GIB = 1024**3


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""


def _python() -> Check:
    version = platform.python_version()
    ok = sys.version_info >= (3, 10)
    return Check("python", "ok" if ok else "fail", f"{version} ({sys.executable})", "" if ok else "use Python 3.10 or newer")


def _torch() -> tuple[Check, object | None]:
    try:
        import torch
    except Exception as e:  # a broken install is the answer, not a crash
        return Check("torch", "fail", f"cannot import torch: {e}", "make install"), None
    if torch.version.cuda:
        build = f"CUDA {torch.version.cuda} build"
    elif getattr(torch.version, "hip", None):
        build = f"ROCm {torch.version.hip} build"
    else:
        build = "CPU build"
    detail = f"torch {torch.__version__}, {build}"
    if (torch.version.cuda or getattr(torch.version, "hip", None)) and not torch.cuda.is_available():
        return Check("torch", "warn", f"{detail}, but no GPU is visible to it", "check the driver and CUDA_VISIBLE_DEVICES"), torch
    if not torch.version.cuda and not getattr(torch.version, "hip", None) and _nvidia_present():
        return Check("torch", "warn", f"{detail} on a machine with an NVIDIA GPU",
                     "make install TORCH_SPEC=torch (PyPI's Linux wheel is the CUDA build)"), torch  # fmt: skip
    if torch.cuda.is_available():
        detail += f", {torch.cuda.device_count()} GPU(s) visible"
    return Check("torch", "ok", detail), torch


def _nvidia_present() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def _gpus() -> list[Check]:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as e:
        if _nvidia_present():
            return [Check("gpu", "fail", f"NVML does not start: {e}", "install or repair the NVIDIA driver (nvidia-smi must work)")]
        return [Check("gpu", "ok", "no NVIDIA GPU (NVML has no driver here): training and export run on the CPU")]
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else driver
        checks = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else name
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            free = mem.free / GIB
            status = "ok" if free >= 0.1 * mem.total / GIB else "warn"
            checks.append(Check(f"gpu {i}", status, f"{name}, {free:.1f} of {mem.total / GIB:.1f} GiB free, driver {driver}",
                                "" if status == "ok" else "other processes hold most of its memory (nvidia-smi)"))  # fmt: skip
        return checks or [Check("gpu", "warn", f"NVML works (driver {driver}) but reports no GPU")]
    finally:
        pynvml.nvmlShutdown()


def _bf16(torch) -> Check:
    if torch is None:
        return Check("bf16", "warn", "unknown (torch does not import)")
    if torch.cuda.is_available():
        ok = torch.cuda.is_bf16_supported()
        return Check("bf16", "ok" if ok else "warn", f"GPU bf16 {'supported' if ok else 'not supported: training uses fp16/fp32'}")
    flags = _cpu_flags()
    native = bool({"avx512_bf16", "amx_bf16"} & flags)
    return Check("bf16", "ok", f"CPU: {'native bf16 (AVX512-BF16/AMX)' if native else 'emulated bf16'}; tunedeck trains in fp32 on CPU")


def _bitsandbytes(torch) -> Check:
    try:
        import bitsandbytes
        from bitsandbytes import cextension
    except Exception as e:
        return Check("bitsandbytes", "fail", f"cannot import: {e}", "make install")
    backend = getattr(cextension, "BNB_BACKEND", "?")
    detail = f"bitsandbytes {bitsandbytes.__version__}, {backend} backend"
    if torch is not None and torch.cuda.is_available() and str(backend).upper() not in ("CUDA", "ROCM"):
        return Check("bitsandbytes", "warn", f"{detail} although a GPU is visible: QLoRA would run on the CPU",
                     "pip install --force-reinstall bitsandbytes (the wheel matching the CUDA torch)")  # fmt: skip
    return Check("bitsandbytes", "ok", f"{detail} (QLoRA 4-bit NF4 {'on the GPU' if str(backend).upper() in ('CUDA', 'ROCM') else 'on the CPU'})")


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


# llama.cpp's system-info names -> /proc/cpuinfo flags the code needs
_LLAMA_FEATURES = {"AVX": "avx", "AVX2": "avx2", "FMA": "fma", "F16C": "f16c", "AVX512": "avx512f", "AVX512_VNNI": "avx512_vnni",
                   "AVX512_BF16": "avx512_bf16", "AVX_VNNI": "avx_vnni", "AMX_INT8": "amx_int8", "BMI2": "bmi2"}  # fmt: skip


def _llama_cpp() -> Check:
    """The build (CPU/CUDA) and whether the CPU features it was compiled for exist here; then a quantized matmul
    run in a child process, so that an illegal instruction kills the child and not this one."""
    try:
        import llama_cpp
    except Exception as e:
        return Check("llama-cpp-python", "fail", f"cannot import: {e}", "make install (it builds the wheel once)")
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    detail = f"llama-cpp-python {llama_cpp.__version__}, {'GPU offload (CUDA)' if gpu else 'CPU only'} build"
    built = {name for part in info.split("|") if "= 1" in part for name in [part.split("=")[0].strip().split(":")[-1].strip()]}
    flags = _cpu_flags()
    missing = sorted(f for f in built if f in _LLAMA_FEATURES and flags and _LLAMA_FEATURES[f] not in flags)
    if missing:
        return Check("llama-cpp-python", "fail", f"{detail} uses {', '.join(missing)}, which this CPU lacks (SIGILL on load)",
                     "rebuild: rm -rf ~/.cache/tunedeck/wheels && make install (portable flags)")  # fmt: skip
    probe = _quantized_kernels_run()
    if probe:
        return Check("llama-cpp-python", "fail", f"{detail}: {probe}", "rebuild: rm -rf ~/.cache/tunedeck/wheels && make install")
    status = "ok"
    fix = ""
    if not gpu and _nvidia_present():
        status, fix = "warn", 'checks and chat run on the CPU: make install LLAMA_CMAKE_ARGS="-DGGML_CUDA=on"'
    return Check("llama-cpp-python", status, f"{detail}; quantized kernels run on this CPU", fix)


# A Q8_0, Q4_K and Q6_K matrix product through ggml itself (the kernels llama.cpp runs on quantized GGUFs).
_PROBE = r"""
import ctypes
from pathlib import Path
import llama_cpp
libs = Path(llama_cpp.__file__).parent / "lib"  # the libraries the wheel ships, loaded as llama_cpp loads them
lib = ctypes.CDLL(str(libs / "libggml.so"))
cpu = ctypes.CDLL(str(libs / "libggml-cpu.so"))
class Params(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]
vp, i64 = ctypes.c_void_p, ctypes.c_int64
lib.ggml_init.restype, lib.ggml_init.argtypes = vp, [Params]
lib.ggml_new_tensor_2d.restype, lib.ggml_new_tensor_2d.argtypes = vp, [vp, ctypes.c_int, i64, i64]
lib.ggml_set_zero.restype, lib.ggml_set_zero.argtypes = vp, [vp]
lib.ggml_mul_mat.restype, lib.ggml_mul_mat.argtypes = vp, [vp, vp, vp]
lib.ggml_new_graph.restype, lib.ggml_new_graph.argtypes = vp, [vp]
lib.ggml_build_forward_expand.argtypes = [vp, vp]
lib.ggml_free.argtypes = [vp]
cpu.ggml_graph_compute_with_ctx.restype, cpu.ggml_graph_compute_with_ctx.argtypes = ctypes.c_int, [vp, vp, ctypes.c_int]
if hasattr(cpu, "ggml_cpu_init"):
    cpu.ggml_cpu_init()
ctx = lib.ggml_init(Params(32 << 20, None, False))
for kind in (8, 12, 14):  # Q8_0, Q4_K, Q6_K
    a = lib.ggml_set_zero(lib.ggml_new_tensor_2d(ctx, kind, 256, 16))
    b = lib.ggml_set_zero(lib.ggml_new_tensor_2d(ctx, 0, 256, 8))
    graph = lib.ggml_new_graph(ctx)
    lib.ggml_build_forward_expand(graph, lib.ggml_mul_mat(ctx, a, b))
    assert cpu.ggml_graph_compute_with_ctx(ctx, graph, 2) == 0, kind
lib.ggml_free(ctx)
print("ok")
"""


def _quantized_kernels_run() -> str:
    """'' when ggml's quantized matrix products run in a child process; else what went wrong."""
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "its quantized kernels did not finish within 120 s"
    if proc.returncode != 0 or "ok" not in proc.stdout:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return f"its quantized kernels die on this CPU ({'SIGILL' if proc.returncode == -4 else last})"
    return ""


def _accelerate() -> Check:
    try:
        from accelerate.commands.config import default_config_file
    except Exception as e:
        return Check("accelerate", "fail", f"cannot import: {e}", "make install")
    path = Path(os.environ.get("ACCELERATE_CONFIG_FILE", default_config_file))
    if path.is_file():
        return Check("accelerate", "ok", f"config {path} (tunedeck's launches pass their own --config_file)")
    return Check("accelerate", "ok", "no default config; tunedeck writes one per multi-GPU run (launch.strategy)")


def _disk(label: str, path: Path) -> Check:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free / GIB
    status = "ok" if free >= 20 else "warn" if free >= 2 else "fail"
    fix = "" if status == "ok" else "free space there: merged models and GGUFs of a 7B model need ~30 GiB"
    return Check(f"disk: {label}", status, f"{free:.1f} GiB free at {path}", fix)


def _hub() -> list[Check]:
    from huggingface_hub import constants

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    checks = [Check("hf hub", "ok", "offline (HF_HUB_OFFLINE): models must be local folders or already cached" if offline
                    else "online: models not in the cache are downloaded when a run starts")]  # fmt: skip
    source = "HF_TOKEN" if os.environ.get("HF_TOKEN") else ("token file" if Path(constants.HF_TOKEN_PATH).is_file() else "")
    checks.append(Check("hf token", "ok", f"configured ({source}); its value is never printed" if source
                        else "none configured (gated models such as Llama need `hf auth login`)"))  # fmt: skip
    return checks


def run_checks(runs_dir: Path = Path("runs")) -> list[Check]:
    """Every check, in the order a person would ask."""
    from huggingface_hub import constants

    checks = [_python()]
    torch_check, torch = _torch()
    checks += [torch_check, *_gpus(), _bf16(torch), _bitsandbytes(torch), _llama_cpp(), _accelerate()]
    checks += [_disk("runs", Path(runs_dir).expanduser().resolve()), _disk("hf cache", Path(constants.HF_HUB_CACHE))]
    checks += _hub()
    return checks


def report(checks: list[Check]) -> dict:
    return {"ok": not any(c.status == "fail" for c in checks), "checks": [asdict(c) for c in checks]}


def lines(checks: list[Check]) -> list[str]:
    width = max(len(c.name) for c in checks)
    out = []
    for c in checks:
        out.append(f"{c.status:<4}  {c.name:<{width}}  {c.detail}" + (f"\n      {'':<{width}}  fix: {c.fix}" if c.fix else ""))
    return out
