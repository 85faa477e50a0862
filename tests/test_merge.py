"""Cross-modal merges through the stock mergekit entry point, checked against the formulas."""

import json
import shutil

import pytest
import torch
from conftest import linear_recipe, run_recipe, tensors
from helpers import is_decoder, tower_key_to_llm
from transformers import AutoModelForImageTextToText

from mergekit_vlm import factory

LAMBDA = 0.9
CASES = [
    ("llava", "transformers5"),
    ("llava", "hub4"),
    ("llava", "v5_memory"),
    ("llava_next", "hub4"),
    ("llava_next", "v5_memory"),
    ("idefics2", "transformers5"),
]


def assert_loads_cleanly(folder):
    model, info = AutoModelForImageTextToText.from_pretrained(str(folder), output_loading_info=True)
    assert info["missing_keys"] == set() or not info["missing_keys"]
    assert not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model


def split_tower(vlm_folder, merged):
    """(decoder tensors, embedding tensors, everything else) of a merged VLM, by VLM key."""
    decoder, vocab, rest = {}, {}, {}
    for key in merged:
        llm_key = tower_key_to_llm(vlm_folder, key)
        if llm_key is None:
            rest[key] = llm_key
        elif is_decoder(llm_key):
            decoder[key] = llm_key
        else:
            vocab[key] = llm_key
    return decoder, vocab, rest


@pytest.mark.parametrize("family,layout", CASES)
def test_linear_matches_formula_in_every_family_and_layout(trios, tmp_path, family, layout):
    trio = trios(family, layout)
    out = run_recipe(linear_recipe(trio.vlm, trio.reasoning, LAMBDA), tmp_path / "out")
    merged, vlm, llm = tensors(out), tensors(trio.vlm), tensors(trio.reasoning)

    assert set(merged) == set(vlm)  # same key set, in the VLM's own layout
    decoder, vocab, rest = split_tower(trio.vlm, merged)
    assert len(decoder) == 9 * 2 + 1 and rest and vocab
    for key, llm_key in decoder.items():
        expected = LAMBDA * vlm[key] + (1 - LAMBDA) * llm[llm_key]
        torch.testing.assert_close(merged[key], expected, rtol=0, atol=1e-6)
        assert not torch.equal(merged[key], vlm[key])  # really merged
    for key in list(vocab) + list(rest):  # embeddings (policy vlm) and the vision side
        assert merged[key].dtype == vlm[key].dtype and torch.equal(merged[key], vlm[key]), key

    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == json.loads((trio.vlm / "config.json").read_text())["architectures"]
    assert config["dtype"] == "float32"
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "processor_config.json",
                 "preprocessor_config.json", "generation_config.json", "README.md", "mergekit_config.yml"):
        assert (out / name).exists(), name
    assert (out / "chat_template.jinja").read_bytes() == (trio.vlm / "chat_template.jinja").read_bytes()


@pytest.mark.parametrize("family", ["llava", "llava_next", "idefics2"])
def test_output_loads_and_generates(trios, tmp_path, family):
    trio = trios(family, "hub4" if family != "idefics2" else "transformers5")
    out = run_recipe(linear_recipe(trio.vlm, trio.reasoning, LAMBDA), tmp_path / "out")
    model = assert_loads_cleanly(out)
    text = factory.generate_from_image(out, "What is 2+3? Answer:", max_new_tokens=3, model=model)
    assert isinstance(text, str) and text != ""
    card = (out / "README.md").read_text()
    front = card.split("---")[1]
    assert "base_model_relation: merge" in front and "pipeline_tag: image-text-to-text" in front
    assert str(trio.vlm) in front and str(trio.reasoning) in front
    assert "library_name: transformers" in front and "borrow_language_tower" in card


def test_task_arithmetic_equals_base_plus_weighted_deltas(trios, tmp_path):
    trio = trios("llava", "hub4")
    recipe = {
        "merge_method": "borrow_language_tower",
        "base_model": str(trio.base),
        "parameters": {"tower_method": "task_arithmetic"},
        "models": [
            {"model": str(trio.vlm), "parameters": {"weight": 0.9}},
            {"model": str(trio.reasoning), "parameters": {"weight": 0.3}},
        ],
        "dtype": "float32",
    }
    merged = tensors(run_recipe(recipe, tmp_path / "out"))
    vlm, llm, base = tensors(trio.vlm), tensors(trio.reasoning), tensors(trio.base)
    decoder, vocab, rest = split_tower(trio.vlm, merged)
    for key, llm_key in decoder.items():
        expected = base[llm_key] + 0.9 * (vlm[key] - base[llm_key]) + 0.3 * (llm[llm_key] - base[llm_key])
        torch.testing.assert_close(merged[key], expected, rtol=0, atol=1e-6)
    for key in list(vocab) + list(rest):
        assert torch.equal(merged[key], vlm[key]), key


def _text_only_copy(trio, folder):
    """The VLM's language tower as a plain text LLM (shared-vocabulary rows only)."""
    vlm = tensors(trio.vlm)
    rows = factory.TOKENIZER_VOCAB_SIZE
    state = {}
    for key, value in vlm.items():
        llm_key = tower_key_to_llm(trio.vlm, key)
        if llm_key is not None:
            state[llm_key] = value if is_decoder(llm_key) else value[:rows].clone()
    shutil.copytree(trio.base, folder)
    from safetensors.torch import save_file

    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


@pytest.mark.parametrize(
    "method,params",
    [
        ("ties", {"density": 0.5}),
        ("dare_ties", {"density": 0.5}),
        ("dare_linear", {"density": 0.5}),
        ("breadcrumbs", {"density": 0.8, "gamma": 0.05}),
    ],
)
def test_sparse_methods_equal_mergekit_on_the_text_towers(trios, tmp_path, method, params):
    trio = trios("llava", "transformers5")
    text_vlm = _text_only_copy(trio, tmp_path / "vlm_text")

    def recipe(vlm_path, merge_method, extra):
        return {
            "merge_method": merge_method,
            "base_model": str(trio.base),
            "models": [
                {"model": str(vlm_path), "parameters": {"weight": 1.6 if method == "ties" else 0.9, **params}},
                {"model": str(trio.reasoning), "parameters": {"weight": 0.2, **params}},
            ],
            "dtype": "float32",
            **extra,
        }

    # merge_shared makes the embeddings go through the method too, as in the text-only
    # reference, so random methods draw from the seeded generator in the same order.
    ours = tensors(run_recipe(
        recipe(trio.vlm, "borrow_language_tower", {"parameters": {"tower_method": method, "embeddings": "merge_shared"}}),
        tmp_path / "ours", random_seed=1234,
    ))
    reference = tensors(run_recipe(recipe(text_vlm, method, {}), tmp_path / "reference", random_seed=1234))
    decoder, vocab, rest = split_tower(trio.vlm, ours)
    vlm = tensors(trio.vlm)
    for key, llm_key in decoder.items():
        torch.testing.assert_close(ours[key], reference[llm_key], rtol=0, atol=1e-6)
    rows = factory.TOKENIZER_VOCAB_SIZE
    for key, llm_key in vocab.items():  # shared rows merged, the <image> row kept
        if method != "ties":
            # Random / outlier sparsifiers: mergekit's scheduler runs lm_head before embed_tokens in
            # the text-only merge and after it here, so the two draw the seeded masks in swapped
            # order (checked by hand: swapping reproduces mergekit bit for bit). Rows still merged:
            assert not torch.equal(ours[key][:rows], vlm[key][:rows])
        else:
            torch.testing.assert_close(ours[key][:rows], reference[llm_key], rtol=0, atol=1e-6)
        assert torch.equal(ours[key][factory.TOKENIZER_VOCAB_SIZE:], vlm[key][factory.TOKENIZER_VOCAB_SIZE:])
    for key in rest:
        assert torch.equal(ours[key], vlm[key])


def test_stock_method_on_vlm_plus_llm_equals_borrow(trios, tmp_path):
    trio = trios("llava_next", "transformers5")
    stock = linear_recipe(trio.vlm, trio.reasoning, LAMBDA)
    stock["merge_method"] = "linear"
    a = tensors(run_recipe(stock, tmp_path / "stock"))
    b = tensors(run_recipe(linear_recipe(trio.vlm, trio.reasoning, LAMBDA), tmp_path / "borrow"))
    assert set(a) == set(b) == set(tensors(trio.vlm))
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert json.loads((tmp_path / "stock" / "config.json").read_text())["model_type"] == "llava_next"


def test_layer_swap_schedule_keeps_early_layers_from_the_vlm(trios, tmp_path):
    trio = trios("llava", "transformers5", num_layers=4)
    recipe = {
        "merge_method": "borrow_language_tower",
        "models": [
            {"model": str(trio.vlm), "parameters": {"weight": [
                {"filter": f"layers.{i}.", "value": 1.0} for i in range(2)] + [{"value": LAMBDA}]}},
            {"model": str(trio.reasoning), "parameters": {"weight": [
                {"filter": f"layers.{i}.", "value": 0.0} for i in range(2)] + [{"value": 1 - LAMBDA}]}},
        ],
        "dtype": "float32",
    }
    merged = tensors(run_recipe(recipe, tmp_path / "out"))
    vlm, llm = tensors(trio.vlm), tensors(trio.reasoning)
    decoder, _, _ = split_tower(trio.vlm, merged)
    for key, llm_key in decoder.items():
        layer = int(llm_key.split(".")[2]) if ".layers." in key else None
        if layer is not None and layer < 2:
            assert torch.equal(merged[key], vlm[key]), key
        else:
            expected = LAMBDA * vlm[key] + (1 - LAMBDA) * llm[llm_key]
            torch.testing.assert_close(merged[key], expected, rtol=0, atol=1e-6)


def test_merge_shared_aligns_rows_by_token_string(trios, tmp_path):
    trio = trios("llava", "transformers5", permuted_vlm_vocab=True)
    recipe = linear_recipe(trio.vlm, trio.reasoning, LAMBDA, parameters={"embeddings": "merge_shared"})
    out = run_recipe(recipe, tmp_path / "out")
    merged, vlm, llm = tensors(out), tensors(trio.vlm), tensors(trio.reasoning)
    vlm_vocab = json.loads((trio.vlm / "tokenizer.json").read_text())["model"]["vocab"]
    vlm_vocab.update({t["content"]: t["id"] for t in json.loads((trio.vlm / "tokenizer.json").read_text())["added_tokens"]})
    llm_vocab = json.loads((trio.reasoning / "tokenizer.json").read_text())["model"]["vocab"]
    llm_vocab.update({t["content"]: t["id"] for t in json.loads((trio.reasoning / "tokenizer.json").read_text())["added_tokens"]})
    shared = [t for t in vlm_vocab if t in llm_vocab]
    assert len(shared) == factory.TOKENIZER_VOCAB_SIZE
    assert sum(vlm_vocab[t] != llm_vocab[t] for t in shared) > 100  # really permuted
    for vlm_key, llm_key in (("language_model.model.embed_tokens.weight", "model.embed_tokens.weight"),
                             ("language_model.lm_head.weight", "lm_head.weight")):
        for token in shared:
            expected = LAMBDA * vlm[vlm_key][vlm_vocab[token]] + (1 - LAMBDA) * llm[llm_key][llm_vocab[token]]
            torch.testing.assert_close(merged[vlm_key][vlm_vocab[token]], expected, rtol=0, atol=1e-6)
        image_row = vlm_vocab["<image>"]
        assert torch.equal(merged[vlm_key][image_row], vlm[vlm_key][image_row])
    assert_loads_cleanly(out)


def test_vlm_plus_vlm_keeps_the_language_model(tmp_path):
    """Two LLaVA fine-tunes (one per layout): mergekit 0.1.5 alone drops their language model."""
    a = factory.build_trio(tmp_path / "a", "llava", layout="hub4", seed=0).vlm
    b = factory.build_trio(tmp_path / "b", "llava", layout="v5_memory", seed=0).vlm
    # Same base (seed 0) and same vision tower; make b a different fine-tune of the tower.
    tb = tensors(b)
    tb = {k: (v + 0.01 * torch.randn_like(v) if "language_model" in k else v) for k, v in tb.items()}
    from safetensors.torch import save_file

    save_file(tb, str(b / "model.safetensors"), metadata={"format": "pt"})
    recipe = {"merge_method": "linear", "models": [{"model": str(a), "parameters": {"weight": 0.5}},
                                                   {"model": str(b), "parameters": {"weight": 0.5}}],
              "dtype": "float32"}
    merged, ta = tensors(run_recipe(recipe, tmp_path / "out")), tensors(a)
    assert set(merged) == set(ta)  # hub4 names of the first VLM, language model included
    to_b = {k: k.replace("language_model.model.", "model.language_model.").replace(
        "language_model.lm_head.", "lm_head.").replace("vision_tower.vision_model.", "model.vision_tower.").replace(
        "multi_modal_projector.", "model.multi_modal_projector.") for k in ta}
    for key in merged:
        torch.testing.assert_close(merged[key], 0.5 * ta[key] + 0.5 * tb[to_b[key]], rtol=0, atol=1e-6)
    assert_loads_cleanly(tmp_path / "out")


def test_transformers4_memory_layout(tmp_path):
    """model.vision_tower.vision_model.* (transformers 4.5x in-memory names): not a factory layout."""
    trio = factory.build_trio(tmp_path / "t", "llava", layout="v5_memory")
    from safetensors.torch import save_file

    renamed = {k.replace("model.vision_tower.", "model.vision_tower.vision_model."): v for k, v in tensors(trio.vlm).items()}
    save_file(renamed, str(trio.vlm / "model.safetensors"), metadata={"format": "pt"})
    out = run_recipe(linear_recipe(trio.vlm, trio.reasoning, LAMBDA), tmp_path / "out")
    merged = tensors(out)
    assert set(merged) == set(renamed)
    key = "model.language_model.layers.1.mlp.down_proj.weight"
    expected = LAMBDA * renamed[key] + (1 - LAMBDA) * tensors(trio.reasoning)["model.layers.1.mlp.down_proj.weight"]
    torch.testing.assert_close(merged[key], expected, rtol=0, atol=1e-6)
    assert torch.equal(merged["model.vision_tower.vision_model.post_layernorm.weight"],
                       renamed["model.vision_tower.vision_model.post_layernorm.weight"])
    assert_loads_cleanly(out)
