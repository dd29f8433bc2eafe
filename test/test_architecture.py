"""The layout's rules, checked the way CI checks them: import-linter's contracts (.importlinter)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def test_import_contracts_hold():
    """runtime and learn never import sim, evaluation, ros or the CLI (nor pybullet, matplotlib);
    only ros imports rclpy; the layers import downwards only; no import cycles between sibling
    packages or modules. A broken contract prints the import chain that breaks it."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    proc = subprocess.run([exe, str(ROOT / ".importlinter")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout and "7 kept" in proc.stdout
