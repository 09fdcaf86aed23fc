# The two jobs a user runs (see README.md):
#   make book   build the Jupyter Book into _build/html from the committed, executed notebooks
#   make test   unit tests + nbval over the committed notebooks
# Both start from nothing: they create .venv, install the pinned requirements and obtain the data.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: book test install data clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

data: $(STAMP)
	$(PY) -m lopcore data fetch

test: $(STAMP) data
	$(VENV)/bin/pytest

clean:
	rm -rf _build
