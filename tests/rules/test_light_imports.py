"""Policy validation stays light: loading and checking a policy set imports no image library
(the fix catalogue, rules.fix_params, names the fixes and their parameters without the pixel
code of rules.fixes). In a fresh interpreter, since this one has them all loaded."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("cv2", "PIL", "numpy", "torch", "ray")


@pytest.mark.parametrize("module", ["rules.schema", "rules.loader"])
def test_policy_validation_imports_no_image_library(module: str) -> None:
    probe = (f"import sys, {module}; "
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                               check=True)
    assert completed.stdout.strip() == ""
