# Lumen: `make demo` sets everything up and serves; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1
INSTALLED := $(VENV)/.installed

.PHONY: demo worker test install browser label-studio lint serve migrate bench-ingest bench-cine bench-scoring bench-ray bench-queue bench-http bench-al bench-al-http bench-interpolation clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever a requirements file changes; lock.txt pins every transitive package.
$(INSTALLED): requirements/base.in requirements/test.in requirements/lock.txt | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/test.in -c requirements/lock.txt
	touch $@

install: $(INSTALLED)

# Debian packages the tests use: Chromium for the browser tests (never `playwright install`: it downloads a
# browser build), Tesseract for the opt-in burned-in text check (annotation/ingest/burned_in.py), Orthanc with
# its DICOMweb plugin (the PACS the DICOMweb import is tested against) and dicom3tools (`dciodvfy` validates
# exported DICOM Segmentation objects).
browser:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	  command -v tesseract >/dev/null 2>&1 || missing="$$missing tesseract-ocr"; \
	  test -x /usr/sbin/Orthanc || missing="$$missing orthanc"; \
	  test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so || missing="$$missing orthanc-dicomweb"; \
	  command -v dciodvfy >/dev/null 2>&1 || missing="$$missing dicom3tools"; \
	  if [ -n "$$missing" ]; then echo "installing Debian packages for the tests:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

# A real Label Studio server for the round-trip tests and the HTTP benchmark, in its own virtualenv under var/
# (its pins clash with Lumen's; benchmarks/label_studio_server.py installs it once and starts it for both).
label-studio: install
	$(PY) -c "from benchmarks.label_studio_server import ensure_installed; ensure_installed()"

migrate: install
	$(PY) manage.py migrate --noinput

demo: install migrate
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py demo_setup
	@echo "Lumen is serving on http://$(HOST):$(PORT)/ with a learning worker on a local Ray (Ctrl-C stops both)"
	@$(PY) manage.py orchestrator & worker=$$!; \
	  trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	  $(VENV)/bin/uvicorn --host $(HOST) --port $(PORT) --ws websockets-sansio --lifespan off webapp.asgi:application

# The learning worker alone (training and scoring jobs; RAY_ADDRESS=… for an existing cluster).
worker: install migrate
	$(PY) manage.py orchestrator

test: install browser label-studio
	DJANGO_SETTINGS_MODULE=webapp.settings.test $(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench-ingest: install
	$(PY) -m benchmarks.ingest

bench-cine: install browser
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/lumen_bench_cine} $(PY) -m benchmarks.cine_open

bench-scoring: install
	$(PY) -m benchmarks.scoring

bench-ray: install
	$(PY) -m benchmarks.ray_scaling --save

bench-http: install
	$(PY) -m benchmarks.http_load --sizes 10000,100000,1000000 --label-studio

bench-queue: install
	$(PY) -m benchmarks.queue

# Active learning against random through the real loop, one task after the other (AL_TASKS=… for fewer).
AL_TASKS ?= vessel_type oct_calcium spect_territory
bench-al: install
	for task in $(AL_TASKS); do $(PY) -m benchmarks.al_simulation --task $$task || exit 1; done

# Vessel-type active learning through the HTTP API: uvicorn + orchestrator as `make demo` runs them.
bench-al-http: install
	$(PY) -m benchmarks.al_http --save

# Cine frame interpolation (seed 001) on two synthetic XA cohorts and pydicom's real multi-frame files (~15 min, CPU).
bench-interpolation: install
	$(PY) -m benchmarks.interpolation --save

clean:
	rm -rf var/media var/static var/lumen.sqlite3*
