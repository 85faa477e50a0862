"""Hub ids go through huggingface_hub for real: here served offline from a populated cache."""

import os
import shutil
import subprocess
import sys


def populate_hub_cache(cache, repo_id, folder, revision="0" * 40):
    """Lay a folder out as huggingface_hub's cache stores a downloaded repo snapshot."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)


def test_inspect_resolves_hub_ids_from_the_cache(trios, tmp_path):
    trio = trios("llava", "hub4")
    cache = tmp_path / "hub"
    populate_hub_cache(cache, "tiny-org/tiny-llava", trio.vlm)
    populate_hub_cache(cache, "tiny-org/tiny-math", trio.reasoning)
    exe = os.path.join(os.path.dirname(sys.executable), "mergekit-vlm")
    result = subprocess.run([exe, "inspect", "tiny-org/tiny-llava", "tiny-org/tiny-math"], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)})
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert "tiny-org/tiny-llava" in result.stdout and "hub4" in result.stdout


def test_unknown_hub_id_is_a_one_line_error(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "mergekit-vlm")
    result = subprocess.run([exe, "inspect", "nobody/nothing"], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path)})
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "nobody/nothing" in errors[0], result.stderr


def test_merge_of_hub_ids_offline_from_the_cache(trios, tmp_path):
    import torch
    from conftest import linear_recipe, run_recipe, tensors
    from huggingface_hub import constants

    trio = trios("llava", "transformers5")
    cache = tmp_path / "hub"
    populate_hub_cache(cache, "tiny-org/tiny-llava", trio.vlm)
    populate_hub_cache(cache, "tiny-org/tiny-math", trio.reasoning)
    saved = constants.HF_HUB_CACHE
    constants.HF_HUB_CACHE = str(cache)  # what HF_HUB_CACHE=... sets at import time
    try:
        out = run_recipe(linear_recipe("tiny-org/tiny-llava", "tiny-org/tiny-math"), tmp_path / "hub-out")
    finally:
        constants.HF_HUB_CACHE = saved
    local = run_recipe(linear_recipe(trio.vlm, trio.reasoning), tmp_path / "local-out")
    a, b = tensors(out), tensors(local)
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert (out / "chat_template.jinja").exists() and (out / "processor_config.json").exists()
    front = (out / "README.md").read_text().split("---")[1]
    assert "- tiny-org/tiny-llava" in front and "- tiny-org/tiny-math" in front
