.PHONY: demo test bench
demo:  ## set up and run BugForge (SQLite + local Redis)
	bash scripts/demo.sh
test:  ## install what the tests need and run them
	bash scripts/test.sh
bench:  ## benchmarks: print figures and ratios against a baseline from the same run
	.venv/bin/python bench/validation_overhead.py
