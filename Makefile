# The two commands a user needs (see README.md): `make perform` (the main job) and `make test`.
# Both set everything up on a fresh machine first (scripts/setup.sh is idempotent).
VENV := .venv
STAMP := $(VENV)/.setup-done

.PHONY: setup perform eval test bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

# The main job. For now: score the Tang test split (issue 2); it becomes `livedance perform`.
perform: $(STAMP)
	$(VENV)/bin/livedance eval --split test

eval: $(STAMP)
	$(VENV)/bin/livedance eval --split test

test: $(STAMP)
	bash scripts/test.sh

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/beats.py

clean:
	rm -rf $(VENV) .pytest_cache
