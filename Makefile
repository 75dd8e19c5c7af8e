# One entry point for the project's tasks; README's two commands are `run` and `test`.
.PHONY: run test lint setup

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

lint:
	bash scripts/lint.sh

setup:
	bash scripts/setup.sh
