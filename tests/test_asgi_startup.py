"""The production entry point imports every view while a worker starts, so no user's request pays for it."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_loading_the_asgi_application_imports_the_views():
    probe = (
        "import sys, webapp.asgi; "
        "print(all(m in sys.modules for m in ('annotation.api.views', 'annotation.api.quality_views', 'webapp.urls')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings.test"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True", done.stdout
