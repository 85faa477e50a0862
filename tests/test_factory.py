"""Tests of the offline model-trio factory (tiny models, CPU, no Hub)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

from mergekit_vlm import factory
from mergekit_vlm.factory import FAMILIES, LAYOUTS, build_trio, build_vlm, generate_from_image

# Expected on-disk names, written out by hand (not derived from the factory) from what
# transformers 5 save_pretrained writes, transformers 4.x Hub checkpoints contain, and
# transformers 5 keeps in memory. Every tensor must start with one of these prefixes and
# every prefix must occur. "text"/"lm_head" locate the language tower for comparisons.
_CLIP_PARTS = ("embeddings.", "encoder.", "pre_layrnorm.", "post_layernorm.")
EXPECTED_LAYOUTS = {
    ("llava", "transformers5"): dict(
        text="language_model.model.",
        lm_head="language_model.lm_head.weight",
        others=tuple("vision_tower." + p for p in _CLIP_PARTS) + ("multi_modal_projector.",),
    ),
    ("llava", "hub4"): dict(
        text="language_model.model.",
        lm_head="language_model.lm_head.weight",
        others=tuple("vision_tower.vision_model." + p for p in _CLIP_PARTS) + ("multi_modal_projector.",),
    ),
    ("llava", "v5_memory"): dict(
        text="model.language_model.",
        lm_head="lm_head.weight",
        others=tuple("model.vision_tower." + p for p in _CLIP_PARTS) + ("model.multi_modal_projector.",),
    ),
}
for _layout, _names in list(EXPECTED_LAYOUTS.items()):
    newline = "model.image_newline" if _layout[1] == "v5_memory" else "image_newline"
    EXPECTED_LAYOUTS[("llava_next", _layout[1])] = dict(_names, others=_names["others"] + (newline,))
for _layout in LAYOUTS:  # Idefics2 has the same names everywhere
    EXPECTED_LAYOUTS[("idefics2", _layout)] = dict(
        text="model.text_model.", lm_head="lm_head.weight", others=("model.vision_model.", "model.connector.")
    )

EXPECTED_CLASSES = {
    "llava": ("LlavaForConditionalGeneration", "LlavaProcessor", "LlamaForCausalLM"),
    "llava_next": ("LlavaNextForConditionalGeneration", "LlavaNextProcessor", "LlamaForCausalLM"),
    "idefics2": ("Idefics2ForConditionalGeneration", "Idefics2Processor", "MistralForCausalLM"),
}
# <image> placeholders per 32x32 image: CLIP 4x4 patches (CLS dropped); LLaVA-NeXT adds a
# 32x64 grid (unpadded back to 4x4) plus 4 newlines; Idefics2's perceiver has 4 latents.
EXPECTED_IMAGE_TOKENS = {"llava": 16, "llava_next": 36, "idefics2": 4}

VOCAB_ROWS = ("model.embed_tokens.weight", "lm_head.weight")
CASES = [(family, layout) for family in FAMILIES for layout in LAYOUTS]


def _tensors(folder):
    return load_file(str(folder / "model.safetensors"))


def _text_tower(vlm_tensors, family, layout):
    """The VLM's language tower under LLM names (model.*, lm_head.weight)."""
    names = EXPECTED_LAYOUTS[(family, layout)]
    out = {"lm_head.weight": vlm_tensors[names["lm_head"]]}
    for key, tensor in vlm_tensors.items():
        if key.startswith(names["text"]):
            out["model." + key[len(names["text"]) :]] = tensor
    return out


def _relative_change(new, old):
    return ((new.float() - old.float()).norm() / old.float().norm()).item()


@pytest.fixture(scope="module", params=CASES, ids=[f"{f}-{l}" for f, l in CASES])
def trio_case(request, tmp_path_factory):
    family, layout = request.param
    root = tmp_path_factory.mktemp(f"{family}_{layout}")
    return family, layout, build_trio(root, family, layout=layout, seed=0)


def test_vlm_reloads_without_key_problems(trio_case):
    family, _, trio = trio_case
    model, info = AutoModelForImageTextToText.from_pretrained(trio.vlm, output_loading_info=True)
    assert type(model).__name__ == EXPECTED_CLASSES[family][0]
    assert not info["missing_keys"]
    assert not info["unexpected_keys"]
    assert not info["mismatched_keys"]


def test_llms_reload_cleanly(trio_case):
    family, _, trio = trio_case
    for folder in (trio.base, trio.reasoning):
        model, info = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
        assert type(model).__name__ == EXPECTED_CLASSES[family][2]
        assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
        assert all(k.startswith(("model.", "lm_head.")) for k in _tensors(folder))


def test_on_disk_names_follow_layout(trio_case):
    family, layout, trio = trio_case
    names = EXPECTED_LAYOUTS[(family, layout)]
    prefixes = (names["text"], names["lm_head"]) + names["others"]
    with safe_open(str(trio.vlm / "model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
        assert f.metadata() == {"format": "pt"}
    for key in keys:
        assert key.startswith(prefixes), key
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in keys), prefix
    assert f"{names['text']}layers.0.self_attn.q_proj.weight" in keys
    assert f"{names['text']}embed_tokens.weight" in keys
    # The factory's own prefix table agrees with the hand-written expectations.
    declared = factory.layout_prefixes(family, layout)
    assert declared["text"] == names["text"]
    assert names["lm_head"].startswith(declared["lm_head"])


def test_vlm_text_tower_and_reasoning_are_small_independent_deltas(trio_case):
    family, layout, trio = trio_case
    base = _tensors(trio.base)
    reasoning = _tensors(trio.reasoning)
    vlm_text = _text_tower(_tensors(trio.vlm), family, layout)
    vocab = base["model.embed_tokens.weight"].shape[0]
    extra = len(factory.FAMILY_IMAGE_TOKENS[family])

    assert set(vlm_text) == set(base) == set(reasoning)
    assert vlm_text["model.embed_tokens.weight"].shape[0] == vocab + extra
    assert vlm_text["lm_head.weight"].shape[0] == vocab + extra
    for name, base_tensor in base.items():
        vlm_tensor = vlm_text[name]
        if name in VOCAB_ROWS:
            vlm_tensor = vlm_tensor[:vocab]  # the extra rows are the VLM-only tokens
        for other in (vlm_tensor, reasoning[name]):
            change = _relative_change(other, base_tensor)
            assert 0 < change < 0.05, (name, change)
        # The two "fine-tunes" moved in different directions.
        assert not torch.allclose(vlm_tensor - base_tensor, reasoning[name] - base_tensor)


def test_processor_and_generation(trio_case):
    family, _, trio = trio_case
    processor = AutoProcessor.from_pretrained(trio.vlm)
    assert type(processor).__name__ == EXPECTED_CLASSES[family][1]
    content = [{"type": "image", "image": factory.demo_image()}, {"type": "text", "text": "Hi"}]
    messages = [{"role": "user", "content": content}]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    ids = inputs["input_ids"][0].tolist()
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert ids.count(image_id) == EXPECTED_IMAGE_TOKENS[family]
    assert ids.count(processor.tokenizer.bos_token_id) == 1  # template writes <s>, processor adds none

    text = generate_from_image(trio.vlm, processor=processor)
    assert isinstance(text, str)


def test_shared_tokenizer_covers_prompts(trio_case):
    _, _, trio = trio_case
    tokenizer = AutoTokenizer.from_pretrained(trio.base)
    prompt = "What is 2+3? Answer: 5, because (2 + 3) = 5!"
    ids = tokenizer(prompt)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == prompt
    assert len(tokenizer) == _tensors(trio.base)["model.embed_tokens.weight"].shape[0]


# Permuted vocabularies: one layout per family keeps this quick while still covering all.
PERMUTED_CASES = [("llava", "hub4"), ("llava_next", "v5_memory"), ("idefics2", "transformers5")]


@pytest.fixture(scope="module", params=PERMUTED_CASES, ids=[f"{f}-{l}" for f, l in PERMUTED_CASES])
def permuted_case(request, tmp_path_factory):
    family, layout = request.param
    root = tmp_path_factory.mktemp(f"permuted_{family}")
    return family, layout, build_trio(root, family, layout=layout, seed=3, permuted_vlm_vocab=True)


def test_permuted_vocab_rows_follow_token_strings(permuted_case):
    family, layout, trio = permuted_case
    base_tok = AutoTokenizer.from_pretrained(trio.base)
    vlm_tok = AutoTokenizer.from_pretrained(trio.vlm)
    base = _tensors(trio.base)
    vlm_text = _text_tower(_tensors(trio.vlm), family, layout)
    vocab = len(base_tok)

    strings = ["What", "Ġis", "Ġ", "2", "+", ":", "<s>", "</s>"]
    moved = 0
    for s in strings:
        base_id, vlm_id = base_tok.convert_tokens_to_ids(s), vlm_tok.convert_tokens_to_ids(s)
        moved += base_id != vlm_id
        for name in VOCAB_ROWS:
            change = _relative_change(vlm_text[name][vlm_id], base[name][base_id])
            assert 0 < change < 0.1, (s, name, change)
    assert moved >= len(strings) - 1  # a random permutation leaves almost nothing in place

    # Same strings, same splits: only the numbering differs.
    prompt = "What is 2+3? Answer:"
    assert vlm_tok.convert_ids_to_tokens(vlm_tok(prompt)["input_ids"]) == base_tok.convert_ids_to_tokens(
        base_tok(prompt)["input_ids"]
    )
    # VLM-only tokens come right after the shared ones and have rows of their own.
    for offset, token in enumerate(factory.FAMILY_IMAGE_TOKENS[family]):
        assert vlm_tok.convert_tokens_to_ids(token) == vocab + offset
    assert vlm_text["model.embed_tokens.weight"].shape[0] == vocab + len(factory.FAMILY_IMAGE_TOKENS[family])


def test_permuted_vlm_generates_like_unpermuted_twin(permuted_case, tmp_path):
    # Rows moved consistently with the tokenizer, so the decoded text cannot change.
    family, layout, trio = permuted_case
    twin = build_trio(tmp_path, family, layout=layout, seed=3, permuted_vlm_vocab=False)
    prompt = "What is 2+3? Answer:"
    text = generate_from_image(trio.vlm, prompt, max_new_tokens=6)
    assert text  # a non-empty answer, so the comparison means something
    assert text == generate_from_image(twin.vlm, prompt, max_new_tokens=6)


def test_builds_are_byte_identical(tmp_path):
    first = build_trio(tmp_path / "a", "llava_next", layout="hub4", seed=7, permuted_vlm_vocab=True)
    second = build_trio(tmp_path / "b", "llava_next", layout="hub4", seed=7, permuted_vlm_vocab=True)
    for a, b in ((first.base, second.base), (first.reasoning, second.reasoning), (first.vlm, second.vlm)):
        files = sorted(p.name for p in a.iterdir())
        assert files == sorted(p.name for p in b.iterdir())
        for name in files:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    other_seed = build_trio(tmp_path / "c", "llava_next", layout="hub4", seed=8, permuted_vlm_vocab=True)
    weights = "model.safetensors"
    assert (other_seed.vlm / weights).read_bytes() != (first.vlm / weights).read_bytes()


def test_build_vlm_alone_with_random_text_tower(tmp_path):
    folder = build_vlm(tmp_path / "vlm", "idefics2", layout="hub4", seed=1, num_layers=1, hidden_size=32)
    model, info = AutoModelForImageTextToText.from_pretrained(folder, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    assert model.config.text_config.num_hidden_layers == 1
    assert isinstance(generate_from_image(folder, model=model), str)


def test_bad_family_or_layout_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="family"):
        build_trio(tmp_path, "blip2")
    with pytest.raises(ValueError, match="layout"):
        build_trio(tmp_path, "llava", layout="hub3")
