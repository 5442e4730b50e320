"""Shared fixtures. Each concern keeps its fixtures in its own plugin module.

Hypothesis: in CI (``CI`` set, as ``.ci/run`` does) the ``ci`` profile is loaded:
derandomized, so a failure found once is found on every run and on every machine;
``HYPOTHESIS_PROFILE`` picks a profile explicitly (``dev`` is Hypothesis' default:
random, to keep finding new cases while developing).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,  # a shared 2-core machine: per-example timing is noise, not a bug
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

pytest_plugins = [
    "tests.fixtures_sandbox",
    "tests.fixtures_store",
    "tests.fixtures_browser",
    "tests.fixtures_serve",
    "pytester",
]
