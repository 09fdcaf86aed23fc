# The two jobs a user runs (see README.md):
#   make book   build the Jupyter Book into _build/html from the committed, executed notebooks
#   make test   unit tests + nbval over the committed notebooks (PYTEST_ARGS="-k ..." narrows it)
# Both start from nothing: they create .venv, install the pinned requirements and obtain the data.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: book mathjax test install data clean page

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

# LOPCORE_NO_COMPUTE=1: the committed notebooks must find all their runs in results/ (a miss is an
# error, never a long computation); tests that compute use their own scratch store.
# pytest's exit code 5 (it collected no tests) means a broken suite here, not a pass.
test: $(STAMP) data
	$(VENV)/bin/ruff check lopcore tests
	$(VENV)/bin/ruff format --check lopcore tests
	LOPCORE_NO_COMPUTE=1 $(VENV)/bin/pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is broken" >&2; exit 1; fi; exit $$rc

# A page written as a MyST text notebook (notebooks/PAGE.md): write its .ipynb from it (keeping nothing
# stale) and execute that in place at its default parameters, from the committed results only.
page: $(STAMP)
	test -n "$(PAGE)" || { echo "usage: make page PAGE=sensitivity" >&2; exit 2; }
	$(VENV)/bin/jupytext --to ipynb notebooks/$(PAGE).md
	LOPCORE_NO_COMPUTE=1 $(VENV)/bin/papermill notebooks/$(PAGE).ipynb notebooks/$(PAGE).ipynb --cwd . --no-progress-bar

# ---- the book ---------------------------------------------------------------------------------
# MathJax is served from a local copy, never a CDN (unreachable offline): the pinned npm tarball
# (from `npm pack`, or MATHJAX_TGZ=/path/to/mathjax-3.2.2.tgz) is checked against its sha256 and its
# es5/ folder unpacked into book/_static/mathjax/ (gitignored); _config.yml sets
# mathjax_path: mathjax/tex-chtml.js, relative to the built site's _static/.
MATHJAX_VERSION := 3.2.2
MATHJAX_SHA256  := 1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09
MATHJAX_DIR     := book/_static/mathjax
MATHJAX_STAMP   := $(MATHJAX_DIR)/.mathjax-$(MATHJAX_VERSION)
NPM_CACHE       := .cache/npm
MATHJAX_TGZ     ?= $(NPM_CACHE)/mathjax-$(MATHJAX_VERSION).tgz
MATHJAX_TMP     := $(NPM_CACHE)/mathjax-unpacked

# Jupyter Book 1, execution off (outputs are the committed notebooks'), every warning an error
# (`-W` plus `--keep-going`, which reports all warnings before failing), always a full rebuild.
book: $(STAMP) $(MATHJAX_STAMP)
	$(VENV)/bin/jupyter-book build . --all --warningiserror --keep-going

mathjax: $(MATHJAX_STAMP)

$(MATHJAX_STAMP):
	@if [ ! -f "$(MATHJAX_TGZ)" ]; then \
	  command -v npm >/dev/null || { echo "make book needs npm to fetch mathjax@$(MATHJAX_VERSION)" \
	    "(or set MATHJAX_TGZ=/path/to/mathjax-$(MATHJAX_VERSION).tgz)" >&2; exit 1; }; \
	  mkdir -p $(NPM_CACHE) && echo "npm pack mathjax@$(MATHJAX_VERSION)" && \
	  (cd $(NPM_CACHE) && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null) || exit 1; \
	fi
	$(PYTHON) -c "import hashlib, sys; h = hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest(); \
	  sys.exit(0 if h == sys.argv[2] else f'{sys.argv[1]}: sha256 {h} != pinned {sys.argv[2]}')" \
	  "$(MATHJAX_TGZ)" $(MATHJAX_SHA256)
	rm -rf $(MATHJAX_DIR) $(MATHJAX_TMP) && mkdir -p $(MATHJAX_TMP) $(dir $(MATHJAX_DIR))
	tar -xzf "$(MATHJAX_TGZ)" -C $(MATHJAX_TMP) package/es5 package/LICENSE
	mv $(MATHJAX_TMP)/package/es5 $(MATHJAX_DIR)
	mv $(MATHJAX_TMP)/package/LICENSE $(MATHJAX_DIR)/LICENSE
	rm -rf $(MATHJAX_TMP)
	touch $@

clean:
	rm -rf _build
