"""Bad input: one-line error naming the problem, nothing that looks like an output, inputs untouched."""

import hashlib
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import linear_recipe, run_recipe

from mergekit_vlm import factory
from mergekit_vlm.errors import MergekitVlmError


def folder_digest(folder) -> str:
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            h.update(name.encode())
            with open(os.path.join(root, name), "rb") as fp:
                h.update(fp.read())
    return h.hexdigest()


def assert_rejected(recipe, out, match):
    parent = out.parent
    before = set(os.listdir(parent))
    with pytest.raises(MergekitVlmError, match=match) as info:
        run_recipe(recipe, out)
    assert "\n" not in str(info.value)
    assert not out.exists()
    assert set(os.listdir(parent)) == before  # no staging folder left behind


@pytest.fixture
def trio(trios):
    return trios("llava", "transformers5")


def test_no_vlm_among_inputs(trio, tmp_path):
    recipe = linear_recipe(trio.base, trio.reasoning)
    assert_rejected(recipe, tmp_path / "out", "exactly one vision-language model")


def test_two_vlms_of_different_families(trios, tmp_path):
    a, b = trios("llava", "transformers5").vlm, trios("idefics2", "transformers5").vlm
    recipe = linear_recipe(a, b)
    recipe["merge_method"] = "linear"
    assert_rejected(recipe, tmp_path / "out", "different families")


def test_two_vlms_with_borrow(trios, tmp_path):
    a, b = trios("llava", "transformers5").vlm, trios("llava", "hub4").vlm
    assert_rejected(linear_recipe(a, b), tmp_path / "out", "exactly one VLM")


def test_text_dims_mismatch_names_field_and_values(trio, tmp_path):
    other = factory.build_llm(tmp_path / "deep", "llama", num_layers=3, seed=5)
    assert_rejected(linear_recipe(trio.vlm, other), tmp_path / "out", r"num_hidden_layers: .*=3 .*=2")


def test_method_needing_a_base_without_one(trio, tmp_path):
    recipe = linear_recipe(trio.vlm, trio.reasoning, parameters={"tower_method": "ties"})
    assert_rejected(recipe, tmp_path / "out", "tower_method ties needs `base_model:`")


def test_unknown_tower_method(trio, tmp_path):
    recipe = linear_recipe(trio.vlm, trio.reasoning, parameters={"tower_method": "avg"})
    assert_rejected(recipe, tmp_path / "out", "unknown tower_method 'avg'")


def test_unknown_embedding_policy(trio, tmp_path):
    recipe = linear_recipe(trio.vlm, trio.reasoning, parameters={"embeddings": "llm"})
    assert_rejected(recipe, tmp_path / "out", "embeddings must be one of")


def test_missing_shard(trio, tmp_path):
    llm = shutil.copytree(trio.reasoning, tmp_path / "llm")
    index = {"metadata": {}, "weight_map": {"model.rotary_extra.weight": "model-00002-of-00002.safetensors"}}
    os.rename(llm / "model.safetensors", llm / "model-00001-of-00002.safetensors")
    import json

    from safetensors import safe_open

    with safe_open(str(llm / "model-00001-of-00002.safetensors"), "pt") as f:
        index["weight_map"].update({k: "model-00001-of-00002.safetensors" for k in f.keys()})
    (llm / "model.safetensors.index.json").write_text(json.dumps(index))
    assert_rejected(linear_recipe(trio.vlm, llm), tmp_path / "out", "model-00002-of-00002.safetensors is missing")


def test_truncated_shard(trio, tmp_path):
    llm = shutil.copytree(trio.reasoning, tmp_path / "llm")
    data = (llm / "model.safetensors").read_bytes()
    (llm / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert_rejected(linear_recipe(trio.vlm, llm), tmp_path / "out", "model.safetensors is truncated")


@pytest.mark.parametrize("where", ["equal", "inside"])
def test_output_inside_an_input_folder(trios, tmp_path, where):
    trio = factory.build_trio(tmp_path / "t", "llava")
    digest = folder_digest(trio.vlm)
    out = trio.vlm if where == "equal" else trio.vlm / "merged"
    with pytest.raises(MergekitVlmError, match="inside the input model folder"):
        run_recipe(linear_recipe(trio.vlm, trio.reasoning), out)
    assert folder_digest(trio.vlm) == digest


def test_inputs_are_never_modified(trio, tmp_path):
    digests = {p: folder_digest(p) for p in (trio.vlm, trio.reasoning)}
    run_recipe(linear_recipe(trio.vlm, trio.reasoning), tmp_path / "out")
    assert {p: folder_digest(p) for p in digests} == digests


def test_stock_mergekit_yaml_prints_one_line_and_exits_nonzero(trio, tmp_path):
    recipe = tmp_path / "bad.yml"
    recipe.write_text(yaml.safe_dump(linear_recipe(trio.vlm, trio.reasoning, parameters={"tower_method": "avg"})))
    mergekit_yaml = os.path.join(os.path.dirname(sys.executable), "mergekit-yaml")
    result = subprocess.run([mergekit_yaml, str(recipe), str(tmp_path / "out")], capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [errors[0]] and "unknown tower_method 'avg'" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_unsupported_vlm_family_with_a_text_llm_is_refused_not_dropped(trio, tmp_path):
    from transformers import Qwen2VLConfig

    folder = tmp_path / "qwen2vl"
    config = Qwen2VLConfig()
    config.architectures = ["Qwen2VLForConditionalGeneration"]
    config.save_pretrained(folder)
    recipe = linear_recipe(folder, trio.reasoning)
    recipe["merge_method"] = "linear"
    assert_rejected(recipe, tmp_path / "out", "does not support yet")
