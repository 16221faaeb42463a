"""The OpenMP wait policy recausal sets before torch loads (see recausal/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = "import os, recausal; print(os.environ['OMP_WAIT_POLICY'])"


def _policy_after_import(env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_importing_recausal_makes_openmp_threads_sleep_unless_told_otherwise():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy_after_import(env) == "PASSIVE"
    assert _policy_after_import({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"


def test_torch_is_not_loaded_by_importing_recausal():
    # the policy only takes effect if torch (libgomp) loads after it is set
    code = "import sys, recausal; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
