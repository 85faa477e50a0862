"""The mergekit-vlm command: demo on a fresh folder (subprocess, as a user runs it) and inspect."""

import os
import subprocess
import sys

from click.testing import CliRunner

from mergekit_vlm.cli import main


def test_demo_runs_offline_and_reports(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "mergekit-vlm")
    result = subprocess.run([exe, "demo", str(tmp_path / "demo")], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "max error" in out and "bit-identical to the VLM" in out and "asked the merged VLM" in out
    assert (tmp_path / "demo" / "merged" / "model.safetensors").exists()
    assert (tmp_path / "demo" / "recipe.yml").exists()


def test_inspect_reports_and_exit_codes(trios, tmp_path):
    trio = trios("llava", "hub4")
    runner = CliRunner()
    ok = runner.invoke(main, ["inspect", str(trio.vlm), str(trio.reasoning), "--base", str(trio.base)])
    assert ok.exit_code == 0, ok.output
    assert "llava" in ok.output and "hub4" in ok.output and "language_model.model." in ok.output
    from mergekit_vlm import factory

    stranger = factory.build_llm(tmp_path / "stranger", "llama", seed=999)
    bad = runner.invoke(main, ["inspect", str(trio.vlm), str(stranger), "--base", str(trio.base)])
    assert bad.exit_code == 1 and "PROBLEM" in bad.output and "stranger" in bad.output
    missing = runner.invoke(main, ["inspect", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "nope" in missing.output
