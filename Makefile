# One entry point for the project's tasks; README's two commands are `run` and `test`.
.PHONY: run test lint setup bench bench-cold

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

lint:
	bash scripts/lint.sh

setup:
	bash scripts/setup.sh

# Both benchmarks (docs/benchmarks.md): the warm path against nginx and direct, then cold
# starts against raw crun. Each prints its ratios against a baseline measured in the same run.
bench:
	bash scripts/bench.sh
	bash scripts/bench-cold.sh

# Only the cold-start benchmark.
bench-cold:
	bash scripts/bench-cold.sh
