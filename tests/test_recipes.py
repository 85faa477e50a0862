"""The shipped paper recipes run end to end, with tiny local stand-ins for their Hub models."""

from pathlib import Path

import pytest
import torch
import yaml
from conftest import run_recipe, tensors
from helpers import is_decoder, tower_key_to_llm

from mergekit_vlm.demo import recipes_dir

# Hub id -> (family of the stand-in trio, which member).
STAND_INS = {
    "llava-hf/llama3-llava-next-8b-hf": ("llava_next", "vlm"),
    "hkust-nlp/dart-math-llama3-8b-prop2diff": ("llava_next", "reasoning"),
    "meta-llama/Meta-Llama-3-8B": ("llava_next", "base"),
    "HuggingFaceM4/idefics2-8b": ("idefics2", "vlm"),
    "TIGER-Lab/MAmmoTH-7B-Mistral": ("idefics2", "reasoning"),
}
PAPER_RECIPES = ["llava_math.yml", "llava_math_ties.yml", "llava_math_layerswap.yml", "idefics_math.yml"]


def localised(recipe: dict, trios) -> dict:
    def swap(model_id):
        family, member = STAND_INS[model_id]
        return str(getattr(trios(family, "hub4" if family != "idefics2" else "transformers5", num_layers=8), member))

    for entry in recipe["models"]:
        entry["model"] = swap(entry["model"])
    if "base_model" in recipe:
        recipe["base_model"] = swap(recipe["base_model"])
    return recipe


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_paper_recipe_runs_on_stand_ins(trios, tmp_path, name):
    recipe = localised(yaml.safe_load((recipes_dir() / name).read_text()), trios)
    out = run_recipe(recipe, tmp_path / "out")
    vlm_folder = Path(recipe["models"][0]["model"])
    merged, vlm = tensors(out), tensors(vlm_folder)
    assert set(merged) == set(vlm)
    assert all(t.dtype == torch.bfloat16 for t in merged.values())
    changed = {k for k in merged if not torch.equal(merged[k], vlm[k].to(torch.bfloat16))}
    tower = {k for k in merged if (llm := tower_key_to_llm(vlm_folder, k)) and is_decoder(llm)}
    assert changed and changed <= tower  # only the language tower moved
    if name == "llava_math_layerswap.yml":  # layers 0..5 of 8 kept, 6..7 merged
        assert {int(k.split(".layers.")[1].split(".")[0]) for k in changed if ".layers." in k} == {6, 7}


def test_demo_recipe_is_the_paper_shape():
    recipe = yaml.safe_load((recipes_dir() / "demo_tiny_llava.yml").read_text())
    assert recipe["merge_method"] == "borrow_language_tower"
    assert [m["parameters"]["weight"] for m in recipe["models"]] == [0.9, 0.1]
