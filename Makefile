# pdl-bench: every target installs what it needs first (scripts/install.sh is quick when done).
VENV    ?= .venv
BIN     := $(VENV)/bin
PDL     := $(BIN)/pdl-bench
TASK    ?=
MODEL   ?=
ALPHAS  ?= 0,0.25,0.5,0.75,1
SEEDS   ?= 0
LOSSES  ?= ce,pdl
GPUS    ?=
ARGS    ?=
PYTEST_ARGS ?=

task_arg  = $(if $(TASK),--task $(TASK))
model_arg = $(if $(MODEL),--model $(MODEL))

.PHONY: install test test-fast check-floors bench sweep table plot report reference ablation perf perf-metrics clean help

help:
	@echo "make bench [TASK=name] [MODEL=id]   CE vs PDL on a task (default: the embedded offline task)"
	@echo "make sweep TASK=name ALPHAS=.. SEEDS=.. LOSSES=..   every (loss, alpha, seed) point"
	@echo "make table | plot | report          rebuild tables, figures, HTML report from results/"
	@echo "make reference                      run the reference sweep's missing points (hours on a CPU), rebuild docs/results.md"
	@echo "make ablation                       run the PDL ablation's missing points (hours on a CPU), rebuild docs/ablation.md"
	@echo "make perf                           training/generation speed and memory, fast vs plain path (results/perf/)"
	@echo "make perf-metrics                   time the metric suite on 11,334 XSum-sized pairs (results/perf/)"
	@echo "make test                           the test suite (installs everything first)"
	@echo "make check-floors                   fast tests in a fresh venv with every dependency at its declared floor"

install:
	@VENV=$(VENV) bash scripts/install.sh

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: install
	PDL_SKIP_SLOW=1 $(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

check-floors:
	bash scripts/check_floors.sh $(PYTEST_ARGS)

bench: install
	$(PDL) bench $(task_arg) $(model_arg) $(ARGS)

sweep: install
	$(PDL) sweep $(task_arg) $(model_arg) --alphas $(ALPHAS) --seeds $(SEEDS) --losses $(LOSSES) $(if $(GPUS),--gpus $(GPUS)) $(ARGS)

table: install
	$(PDL) table $(ARGS)

plot: install
	$(PDL) plot $(ARGS)

report: install
	$(PDL) report $(ARGS)

reference: install
	$(PDL) reference $(ARGS)

ablation: install
	$(PDL) ablation $(ARGS)

perf: install
	$(PDL) perf $(ARGS)

perf-metrics: install
	$(PDL) perf-metrics $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
