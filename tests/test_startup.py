"""The web process's start: what config/wsgi.py and config/asgi.py do once."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import gc, sys
import config.{module}
print(gc.get_freeze_count(), "compliance.eligibility.apis" in sys.modules, gc.isenabled())
"""


@pytest.mark.parametrize("module", ["wsgi", "asgi"])
def test_the_loaded_application_is_frozen_out_of_the_collectors_scans(module: str) -> None:
    """Every object the application holds once loaded, its views included, is in the
    permanent generation: a full collection no longer walks them (the 10,000-id batch
    paid 50-80 ms for that every second or third call). The collector still runs for
    what requests allocate."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    done = subprocess.run(  # noqa: S603 (this interpreter, a constant script)
        [sys.executable, "-c", PROBE.format(module=module)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    frozen, views_loaded, enabled = done.stdout.split()[-3:]
    assert int(frozen) > 50_000
    assert views_loaded == "True"
    assert enabled == "True"
