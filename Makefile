# The two commands a user needs (see README.md): `make perform` (the main job) and `make test`.
# Both set everything up on a fresh machine first (scripts/setup.sh is idempotent).
VENV := .venv
STAMP := $(VENV)/.setup-done

.PHONY: setup perform eval test bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

# The main job: dance to the bundled CC BY-SA song excerpt, streaming VMC to 127.0.0.1:39539 and
# serving the 3D web preview on http://127.0.0.1:8765/ (open it in a browser while it plays).
perform: $(STAMP)
	$(VENV)/bin/livedance perform demo --vmc 127.0.0.1:39539 --preview

eval: $(STAMP)
	$(VENV)/bin/livedance eval --split test

test: $(STAMP)
	bash scripts/test.sh

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/beats.py

clean:
	rm -rf $(VENV) .pytest_cache
