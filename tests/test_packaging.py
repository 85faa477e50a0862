"""The wheel ships the .pth hook, the JSON definitions and the recipes, and activates from it."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_contents_and_activation(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("mergekit_vlm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "mergekit_vlm.pth" in names
    for expected in ("mergekit_vlm/architectures/llava.json", "mergekit_vlm/architectures/llava_next.json",
                     "mergekit_vlm/architectures/idefics2.json", "mergekit_vlm/recipes/llava_math.yml",
                     "mergekit_vlm/plugin.py"):
        assert expected in names, expected

    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    # -S: no start-up .pth processing, so the editable install stays out; the venv's packages
    # are put on sys.path plainly, and only the wheel's folder gets site processing (its .pth).
    import sysconfig

    code = (
        f"import sys, site; sys.path.append({sysconfig.get_paths()['purelib']!r}); "
        f"site.addsitedir({str(target)!r}); "
        "import mergekit.merge as m, mergekit_vlm.families as f; "
        f"print(hasattr(m.run_merge, '__wrapped__'), f.architectures_dir().startswith({str(target)!r}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env={**env, "HF_HUB_OFFLINE": "1"})
    assert result.stdout.split() == ["True", "True"], result.stderr[-2000:]
