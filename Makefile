# tunedeck: `make demo` and `make test` work on a fresh machine (they create the venv first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU build of torch (pip takes it from local disk where a mirror has it). GPU boxes:
#   make install TORCH_SPEC=torch   (PyPI's default Linux wheel is the CUDA build)
TORCH_SPEC ?= torch==2.13.0
# llama-cpp-python has no wheel on PyPI: it is compiled once and kept in a wheelhouse.
# Portable x86-64 flags: a -march=native build can emit AMX code that dies with SIGILL on
# machines (or VMs) that report AMX but do not let processes use it. GPU boxes:
#   make install LLAMA_CMAKE_ARGS="-DGGML_CUDA=on"
LLAMA_VERSION ?= 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
WHEELHOUSE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/tunedeck/wheels/llama-cpp-python-$(LLAMA_VERSION)-$(shell printf '%s' '$(LLAMA_CMAKE_ARGS)' | md5sum | cut -c1-8)
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast run lint bench clean llama-wheel

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "$(TORCH_SPEC)"
	$(MAKE) llama-wheel
	$(PIP) install --quiet $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	$(PIP) install --quiet -e ".[dev]"
	$(PIP) check
	touch $(STAMP)

llama-wheel:
	@mkdir -p $(WHEELHOUSE)
	@# The sdist stays beside the wheel: it vendors llama.cpp's real chat templates (the template tests read them).
	@test -f $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION).tar.gz || \
		$(PIP) download --quiet --no-deps --no-binary :all: -d $(WHEELHOUSE) llama-cpp-python==$(LLAMA_VERSION)
	@if ls $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
		echo "llama-cpp-python $(LLAMA_VERSION): using $(WHEELHOUSE)"; \
	else \
		echo "building llama-cpp-python $(LLAMA_VERSION) (takes 4-9 minutes, once) into $(WHEELHOUSE)"; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
			$(PIP) wheel --quiet --no-deps --no-cache-dir -w $(WHEELHOUSE) $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION).tar.gz; \
	fi

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/tunedeck demo --headless

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

# Everything that trains nothing (no demo model, no llama.cpp run): under 2 minutes on 2 cores.
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

run: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/tunedeck demo

# Each writes bench/results/<name>.json (stdout); report.py then regenerates docs/benchmarks.md.
# Every bench/*.py but the helpers runs; the GPU-only ones (after the listed ones) print
# {"skipped": ...} without CUDA. About 10-15 minutes on 2 CPU cores.
BENCH_FIRST := engine_overhead throughput_options tui_latency data_inspect chat_vs_llama export_checks attach_history
BENCH_HELPERS := bare_trl_sft report
# Long ones (demo_robustness: ~30 min of training) run on their own: make bench BENCHES=demo_robustness
# real_demo and real_model (Gemma 3 270M: about 15 and 20 minutes) too: make bench BENCHES="real_demo real_model"
BENCH_LONG := demo_robustness real_demo real_model
BENCHES ?= $(BENCH_FIRST) $(sort $(filter-out $(BENCH_FIRST) $(BENCH_HELPERS) $(BENCH_LONG),$(basename $(notdir $(wildcard bench/*.py)))))

bench: $(STAMP)
	mkdir -p bench/results
	@failed=""; for n in $(BENCHES); do echo "== $$n"; \
		if HF_HUB_OFFLINE=1 PYTHONPATH=. $(PY) bench/$$n.py > bench/results/$$n.json.tmp; then \
			mv bench/results/$$n.json.tmp bench/results/$$n.json && cat bench/results/$$n.json; \
		else failed="$$failed $$n"; rm -f bench/results/$$n.json; fi; done; \
	$(PY) bench/report.py; \
	if [ -n "$$failed" ]; then echo "failed:$$failed (output in bench/results/<name>.json.tmp)"; exit 1; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check engine tui themes tests bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
