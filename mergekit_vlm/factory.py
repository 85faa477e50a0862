"""Tiny, realistic, offline model trios for demos and tests.

A *trio* is what a mergekit-vlm user starts from:

* ``base``: a text LLM (random, seeded);
* ``reasoning``: the same LLM plus a small fine-tune-like delta on every tensor;
* ``vlm``: a complete Hub-style VLM folder (config, weights, tokenizer, processor, chat
  template, generation config) whose language tower is ``base`` plus another, independent
  delta, while its vision tower and projector/connector are random.

Everything is built offline in well under a second per folder and is byte-for-byte
deterministic for a given seed: weights come from per-tensor generators keyed on the
seed and the tensor name, and the tokenizer's BPE merges are learned by a small
deterministic routine (the ``tokenizers`` trainer iterates hash maps, so its ties are
not guaranteed to break the same way in every process).

The VLM's safetensors can be written in three tensor-name *layouts* (see ``LAYOUTS`` and
``mergekit_vlm.families``): ``transformers5`` (what ``save_pretrained`` writes today),
``hub4`` (Hub checkpoints written by transformers 4.x) and ``v5_memory`` (transformers 5
in-memory names). All three load back into ``AutoModelForImageTextToText`` cleanly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

FAMILIES = ("llava", "llava_next", "idefics2")
LAYOUTS = ("transformers5", "hub4", "v5_memory")

# Text LLM kind that each VLM family's language tower is an instance of.
FAMILY_TEXT_KIND = {"llava": "llama", "llava_next": "llama", "idefics2": "mistral"}

# Tokens only the VLM knows, appended after the shared vocabulary in this order.
FAMILY_IMAGE_TOKENS = {
    "llava": ("<image>",),
    "llava_next": ("<image>",),
    "idefics2": ("<image>", "<fake_token_around_image>", "<end_of_utterance>"),
}

# Ids 0..3 of the shared vocabulary, Llama style (unk first, then bos/eos).
UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
SPECIAL_TOKENS = (UNK, BOS, EOS, PAD)

TOKENIZER_VOCAB_SIZE = 512  # shared vocabulary: 4 specials + 256 bytes + 252 merges

# Vision side: 32px images cut in 8px patches -> 16 patches, so image prompts stay short.
IMAGE_SIZE = 32
PATCH_SIZE = 8
VISION_HIDDEN = 32
# LLaVA-NeXT "anyres" grids, multiples of the base resolution like the real (336-based) ones.
LLAVA_NEXT_GRID_PINPOINTS = [[32, 64], [64, 32], [64, 64]]
# Idefics2's perceiver compresses every image to this many <image> tokens.
IDEFICS2_IMAGE_SEQ_LEN = 4

# Relative size of the fine-tune-like deltas: std = DELTA_SCALE * std(tensor).
DELTA_SCALE = 0.02

StateDict = Dict[str, torch.Tensor]
PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class Trio:
    base: Path  # base text LLM folder
    reasoning: Path  # reasoning LLM folder = base + a fine-tune-like delta
    vlm: Path  # VLM folder whose text tower = base + another delta


# ---------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------

# Training text for the shared BPE vocabulary: plain English, arithmetic, digits and the
# punctuation used by prompts and chat templates, so common words become single tokens.
_CORPUS = """
What is 2+3? Answer: 5. What is 7-4? Answer: 3. What is 6*8? Answer: 48.
What is 9/3? Answer: 3. What is 12+30? Answer: 42. Is 17 a prime number? Answer: yes.
Question: what is shown in the image? Answer: a red circle on a white background.
Question: how many squares are in the picture? Answer: there are three blue squares.
USER: describe the image. ASSISTANT: the image shows a small green triangle.
User: What color is the shape? Assistant: The shape is yellow.
Let us think step by step. First, we add the two numbers. Then we check the result.
If x = 4 and y = 5, then x + y = 9 and x * y = 20. So the answer is 9.
The sum of the angles of a triangle is 180 degrees. A square has four equal sides.
A circle has no corners; its area is pi times the radius squared, about 3.14 * r * r.
We compute (3 + 4) * 2 = 14, because the parentheses come first. Therefore, 14.
The model reads the question, looks at the picture, and writes a short answer.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 20 25 50 100 1000.
Symbols: + - * / = < > ( ) [ ] { } , . ; : ! ? ' " % # @ & _ ^ ~ | $
The quick brown fox jumps over the lazy dog. The dog sleeps under the old tree.
A photo of a cat sitting next to a window. A chart with two lines and a title.
Reasoning helps the model solve problems that need several careful steps.
The final answer is the number that makes the equation true: 2x + 1 = 7, so x = 3.
What is shown? Answer: a diagram. What is in the picture? Answer: a table of numbers.
Count the objects, compare the sizes, and explain why the answer is correct.
Please answer with one word. Please answer with a number. Thank you!
USER: What is 3+4? ASSISTANT: 7. USER: And 5+6? ASSISTANT: 11.
USER: What is in the image? ASSISTANT: A red square. USER: Why? ASSISTANT: Look.
User: Describe the image. Assistant: A square. User: Count them. Assistant: Two.
User: What is shown? Assistant: A circle. User: Thanks. Assistant: You are welcome.
"""


@lru_cache(maxsize=None)
def _learned_bpe(
    vocab_size: int = TOKENIZER_VOCAB_SIZE,
) -> Tuple[Tuple[Tuple[str, int], ...], Tuple[Tuple[str, str], ...]]:
    """Byte-level BPE vocabulary and merges learned from ``_CORPUS``, deterministically.

    Ties between equally frequent pairs break on the pair itself, so the result never
    depends on hash order. Returns (vocab items, merges) as tuples so it can be cached.
    """
    pre_tokenizer = _pre_tokenizer()
    words = Counter(piece for piece, _ in pre_tokenizer.pre_tokenize_str(_CORPUS))
    splits = {word: tuple(word) for word in words}

    vocab: Dict[str, int] = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    merges: List[Tuple[str, str]] = []
    while len(vocab) < vocab_size:
        pair_counts: Counter = Counter()
        for word, count in words.items():
            symbols = splits[word]
            for pair in zip(symbols, symbols[1:]):
                pair_counts[pair] += count
        if not pair_counts:
            break
        best = min(pair_counts, key=lambda pair: (-pair_counts[pair], pair))
        merged = best[0] + best[1]
        merges.append(best)
        if merged not in vocab:
            vocab[merged] = len(vocab)
        for word, symbols in splits.items():
            splits[word] = _apply_merge(symbols, best, merged)
    return tuple(vocab.items()), tuple(merges)


def _apply_merge(symbols: Tuple[str, ...], pair: Tuple[str, str], merged: str) -> Tuple[str, ...]:
    out: List[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def _pre_tokenizer():
    # Llama-style single digits, then GPT-2 style byte-level words: nothing is ever unknown.
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


def shared_vocab() -> Dict[str, int]:
    """Token string -> id of the vocabulary shared by the base and reasoning LLMs."""
    return dict(_learned_bpe()[0])


def make_tokenizer(
    vocab: Optional[Mapping[str, int]] = None, extra_special_tokens: Sequence[str] = ()
):
    """A ``PreTrainedTokenizerFast`` over ``vocab`` (default: the shared one).

    ``extra_special_tokens`` (e.g. ``<image>``) get the ids right after the vocabulary,
    in order. The token *strings* and merges are always the shared ones, so a permuted
    ``vocab`` yields a tokenizer that splits text identically but numbers tokens differently.
    """
    from transformers import PreTrainedTokenizerFast

    vocab = dict(vocab if vocab is not None else shared_vocab())
    merges = list(_learned_bpe()[1])
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=UNK))
    backend.pre_tokenizer = _pre_tokenizer()
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS + tuple(extra_special_tokens)]
    )
    # Like Llama, plain encoding starts with <s>; chat templates write it themselves and the
    # processor then skips adding it a second time.
    bos_id = vocab[BOS]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        model_max_length=2048,
    )


def vlm_vocab(family: str, *, permuted: bool = False, seed: int = 0) -> Dict[str, int]:
    """Token string -> id of the VLM's tokenizer: shared tokens (possibly permuted) + image tokens."""
    base = shared_vocab()
    vocab = dict(base)
    if permuted:
        perm = torch.randperm(len(base), generator=_generator(seed, "vlm_vocab_permutation")).tolist()
        vocab = {token: perm[idx] for token, idx in base.items()}
    for token in FAMILY_IMAGE_TOKENS[family]:
        vocab[token] = len(vocab)
    return vocab


# ---------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------


def _generator(seed: int, *tags: str) -> torch.Generator:
    """A generator keyed on (seed, tags): every tensor gets its own stream, independent of
    the order tensors are visited in or which other tensors exist."""
    digest = hashlib.sha256(repr((seed,) + tags).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def _random_tensor(name: str, shape: Sequence[int], g: torch.Generator) -> torch.Tensor:
    """A plausible trained-looking tensor: norms near 1, small biases, 1/sqrt(fan_in) matrices."""
    noise = torch.randn(tuple(shape), generator=g, dtype=torch.float32)
    module = name.split(".")[-2] if "." in name else ""
    is_norm = "norm" in module  # also CLIP's misspelt "pre_layrnorm"
    if name.endswith("bias"):
        return 0.02 * noise
    if is_norm and len(shape) == 1:
        # Non-constant around 1, so a relative delta on it is non-zero.
        return 1.0 + 0.05 * noise
    if len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        return noise / math.sqrt(fan_in)
    return noise / math.sqrt(shape[0])  # 1-D parameters: CLIP class_embedding, image_newline


def random_state_dict(shapes: Mapping[str, Sequence[int]], seed: int, tag: str) -> StateDict:
    """Random float32 tensors for ``shapes``; tensor ``n`` depends only on (seed, tag, n)."""
    return {name: _random_tensor(name, shape, _generator(seed, tag, name)) for name, shape in shapes.items()}


def perturb(
    state_dict: Mapping[str, torch.Tensor], seed: int, tag: str, scale: float = DELTA_SCALE
) -> StateDict:
    """``state_dict`` plus an independent Gaussian delta of ``scale`` x each tensor's std,
    like a short fine-tune touching every tensor."""
    out = {}
    for name, tensor in state_dict.items():
        t = tensor.float()
        spread = t.std().item() if t.numel() > 1 else 0.0
        if spread == 0.0:
            spread = t.abs().mean().item() or 1.0  # constant tensors still move a little
        noise = torch.randn(t.shape, generator=_generator(seed, tag, name), dtype=torch.float32)
        out[name] = t + scale * spread * noise
    return out


def _load_exact(model, state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype) -> None:
    """Load every tensor of ``model`` from ``state_dict`` (same names, strict)."""
    cast = {name: tensor.to(dtype) for name, tensor in state_dict.items()}
    model.load_state_dict(cast, strict=True)


def _shapes(model) -> Dict[str, Tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


# ---------------------------------------------------------------------------------------
# Text LLMs
# ---------------------------------------------------------------------------------------


def text_config(
    text_kind: str,
    *,
    vocab: Mapping[str, int],
    num_layers: int = 2,
    hidden_size: int = 64,
):
    """Tiny Llama/Mistral config (4 heads, 2 KV heads, untied embeddings) for ``vocab``."""
    from transformers import LlamaConfig, MistralConfig

    config_cls = {"llama": LlamaConfig, "mistral": MistralConfig}[text_kind]
    return config_cls(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=vocab[BOS],
        eos_token_id=vocab[EOS],
        pad_token_id=vocab[PAD],
    )


def _llm_class(text_kind: str):
    from transformers import LlamaForCausalLM, MistralForCausalLM

    return {"llama": LlamaForCausalLM, "mistral": MistralForCausalLM}[text_kind]


def random_llm_state_dict(
    text_kind: str, *, seed: int = 0, num_layers: int = 2, hidden_size: int = 64
) -> StateDict:
    """Seeded random weights of a tiny text LLM, under ``model.layers.N...`` / ``lm_head`` names."""
    config = text_config(text_kind, vocab=shared_vocab(), num_layers=num_layers, hidden_size=hidden_size)
    with torch.device("meta"):  # only the names and shapes are needed
        model = _llm_class(text_kind)(config)
    return random_state_dict(_shapes(model), seed, "llm")


def build_llm(
    path: PathLike,
    text_kind: str = "llama",
    *,
    state_dict: Optional[Mapping[str, torch.Tensor]] = None,
    seed: int = 0,
    num_layers: int = 2,
    hidden_size: int = 64,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a text LLM folder (weights, config, generation config, tokenizer).

    ``state_dict`` (LLM tensor names) defaults to seeded random weights; its shapes decide
    the size when given.
    """
    path = Path(path)
    if state_dict is not None:
        num_layers, hidden_size = _text_dims(state_dict, "model.")
    else:
        state_dict = random_llm_state_dict(
            text_kind, seed=seed, num_layers=num_layers, hidden_size=hidden_size
        )
    config = text_config(text_kind, vocab=shared_vocab(), num_layers=num_layers, hidden_size=hidden_size)
    model = _llm_class(text_kind)(config).to(dtype)
    _load_exact(model, state_dict, dtype)
    model.save_pretrained(path)
    make_tokenizer().save_pretrained(path)
    return path


def _text_dims(state_dict: Mapping[str, torch.Tensor], prefix: str) -> Tuple[int, int]:
    """(num_layers, hidden_size) of a text tower state dict with keys under ``prefix``."""
    hidden = state_dict[f"{prefix}embed_tokens.weight"].shape[1]
    layers = {k[len(prefix) :].split(".")[1] for k in state_dict if k.startswith(f"{prefix}layers.")}
    return len(layers), hidden


# ---------------------------------------------------------------------------------------
# VLMs
# ---------------------------------------------------------------------------------------

# Where the language tower lives in each family's in-memory (transformers 5) state dict.
_MEMORY_TEXT_PREFIX = {
    "llava": "model.language_model.",
    "llava_next": "model.language_model.",
    "idefics2": "model.text_model.",
}

# Rewrites from what save_pretrained writes (transformers5) to the other layouts, as
# ordered (old prefix, new prefix) pairs; the first matching pair wins. Idefics2 kept the
# same names in transformers 4 and 5, on disk and in memory.
_LLAVA_TO_MEMORY = (
    ("language_model.lm_head.", "lm_head."),
    ("language_model.model.", "model.language_model."),
    ("vision_tower.", "model.vision_tower."),
    ("multi_modal_projector.", "model.multi_modal_projector."),
    ("image_newline", "model.image_newline"),
)
_LLAVA_RENAMES = {
    "transformers5": (),
    "hub4": (("vision_tower.", "vision_tower.vision_model."),),  # CLIPVisionModel's old extra level
    "v5_memory": _LLAVA_TO_MEMORY,
}
_LAYOUT_RENAMES: Dict[Tuple[str, str], Tuple[Tuple[str, str], ...]] = {
    **{("llava", layout): renames for layout, renames in _LLAVA_RENAMES.items()},
    **{("llava_next", layout): renames for layout, renames in _LLAVA_RENAMES.items()},
    **{("idefics2", layout): () for layout in LAYOUTS},
}


def layout_key(family: str, layout: str, saved_name: str) -> str:
    """The name a tensor saved by transformers 5 (``saved_name``) has in ``layout``."""
    for old, new in _LAYOUT_RENAMES[(_family(family), _layout_name(layout))]:
        if saved_name.startswith(old):
            return new + saved_name[len(old) :]
    return saved_name


# Component -> tensor-name prefix of each family in the transformers5 layout; the other
# layouts follow through layout_key. "text" holds embed_tokens / layers.N / norm.
_SAVED_PREFIXES = {
    "llava": {
        "text": "language_model.model.",
        "lm_head": "language_model.lm_head.",
        "vision": "vision_tower.",
        "projector": "multi_modal_projector.",
    },
    "idefics2": {
        "text": "model.text_model.",
        "lm_head": "lm_head.",
        "vision": "model.vision_model.",
        "projector": "model.connector.",
    },
}
_SAVED_PREFIXES["llava_next"] = dict(_SAVED_PREFIXES["llava"], image_newline="image_newline")


def layout_prefixes(family: str, layout: str) -> Dict[str, str]:
    """Component -> tensor-name prefix in the VLM safetensors written with ``layout``."""
    saved = _SAVED_PREFIXES[_family(family)]
    return {component: layout_key(family, layout, prefix) for component, prefix in saved.items()}


def _family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    return family


def _layout_name(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    return layout


def vlm_config(family: str, *, vocab: Mapping[str, int], num_layers: int = 2, hidden_size: int = 64):
    """The real transformers config of a tiny ``family`` VLM over ``vocab``."""
    from transformers import CLIPVisionConfig, Idefics2Config, LlavaConfig, LlavaNextConfig

    text = text_config(FAMILY_TEXT_KIND[family], vocab=vocab, num_layers=num_layers, hidden_size=hidden_size)
    image_token_id = vocab["<image>"]
    if family == "idefics2":
        vision = dict(
            hidden_size=VISION_HIDDEN,
            intermediate_size=2 * VISION_HIDDEN,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
        )
        perceiver = dict(
            hidden_size=hidden_size,
            rms_norm_eps=text.rms_norm_eps,
            resampler_n_latents=IDEFICS2_IMAGE_SEQ_LEN,
            resampler_depth=1,
            resampler_n_heads=2,
            resampler_head_dim=16,
            num_key_value_heads=1,
        )
        return Idefics2Config(
            text_config=text.to_dict(),
            vision_config=vision,
            perceiver_config=perceiver,
            image_token_id=image_token_id,
            tie_word_embeddings=False,
        )

    vision = CLIPVisionConfig(
        hidden_size=VISION_HIDDEN,
        intermediate_size=2 * VISION_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=VISION_HIDDEN,
    )
    common = dict(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        image_token_index=image_token_id,
        # The CLS token is dropped ("default"), so an image is (32/8)^2 = 16 features.
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        tie_word_embeddings=False,
    )
    if family == "llava":
        return LlavaConfig(**common)
    return LlavaNextConfig(image_grid_pinpoints=LLAVA_NEXT_GRID_PINPOINTS, **common)


def _vlm_class(family: str):
    from transformers import (
        Idefics2ForConditionalGeneration,
        LlavaForConditionalGeneration,
        LlavaNextForConditionalGeneration,
    )

    return {
        "llava": LlavaForConditionalGeneration,
        "llava_next": LlavaNextForConditionalGeneration,
        "idefics2": Idefics2ForConditionalGeneration,
    }[family]


def _chat_template(family: str) -> str:
    """A small Jinja template rendering {"type": "image"} / {"type": "text"} content lists."""
    content = (
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for item in message['content'] %}"
        "{% if item['type'] == 'image' %}<image>{{ image_sep }}"
        "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
        "{% endfor %}{% endif %}"
    )
    if family == "idefics2":
        # Idefics2 style: "User:<image>Hi<end_of_utterance>\nAssistant:".
        return (
            "{% set image_sep = '' %}{{ bos_token }}{% for message in messages %}"
            "{{ message['role'] | capitalize }}:" + content + "<end_of_utterance>\n"
            "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
        )
    # LLaVA style: "USER: <image>\nHi ASSISTANT:".
    return (
        "{% set image_sep = '\\n' %}{{ bos_token }}{% for message in messages %}"
        "{{ message['role'] | upper }}: " + content
        + "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %} "
        "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    )


def make_processor(family: str, tokenizer):
    """The family's real processor class, with the PIL image processor (no torchvision),
    configured so that ``<image>`` expands to exactly the features the model produces."""
    from transformers import Idefics2Processor, LlavaNextProcessor, LlavaProcessor
    from transformers.models.idefics2.image_processing_pil_idefics2 import Idefics2ImageProcessorPil
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    template = _chat_template(family)
    if family == "idefics2":
        images = Idefics2ImageProcessorPil(
            size={"shortest_edge": IMAGE_SIZE // 2, "longest_edge": IMAGE_SIZE}, do_image_splitting=False
        )
        return Idefics2Processor(
            image_processor=images,
            tokenizer=tokenizer,
            image_seq_len=IDEFICS2_IMAGE_SEQ_LEN,
            chat_template=template,
        )
    clip_kwargs = dict(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    # CLIP yields patches + 1 CLS; the "default" strategy then drops the CLS again.
    processor_kwargs = dict(
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=template,
    )
    if family == "llava":
        return LlavaProcessor(image_processor=LlavaImageProcessorPil(**clip_kwargs), **processor_kwargs)
    images = LlavaNextImageProcessorPil(image_grid_pinpoints=LLAVA_NEXT_GRID_PINPOINTS, **clip_kwargs)
    return LlavaNextProcessor(image_processor=images, **processor_kwargs)


def build_vlm(
    path: PathLike,
    family: str = "llava",
    *,
    text_state_dict: Optional[Mapping[str, torch.Tensor]] = None,
    layout: str = "transformers5",
    seed: int = 0,
    num_layers: int = 2,
    hidden_size: int = 64,
    dtype: torch.dtype = torch.float32,
    permuted_vocab: bool = False,
) -> Path:
    """Write a complete Hub-style VLM folder for ``family`` with tensor names of ``layout``.

    ``text_state_dict`` (text LLM names: ``model.layers.N...``, ``lm_head.weight``, rows in
    shared-vocabulary order) becomes the language tower; the rows of VLM-only tokens, the
    vision tower and the projector/connector are seeded random. Without it the language
    tower is the seeded random LLM of ``build_llm(..., seed=seed)``. ``permuted_vocab`` gives shared token strings different ids
    (a seeded permutation), with embedding and lm_head rows moved along.
    """
    from transformers import GenerationConfig

    path = Path(path)
    family, layout = _family(family), _layout_name(layout)
    if text_state_dict is not None:
        num_layers, hidden_size = _text_dims(text_state_dict, "model.")
    else:
        text_state_dict = random_llm_state_dict(
            FAMILY_TEXT_KIND[family], seed=seed, num_layers=num_layers, hidden_size=hidden_size
        )

    vocab = vlm_vocab(family, permuted=permuted_vocab, seed=seed)
    config = vlm_config(family, vocab=vocab, num_layers=num_layers, hidden_size=hidden_size)
    model = _vlm_class(family)(config).to(dtype)

    weights = random_state_dict(_shapes(model), seed, "vlm")
    weights.update(_place_text_tower(family, text_state_dict, weights, shared_vocab(), vocab))
    _load_exact(model, weights, dtype)
    model.generation_config = GenerationConfig(
        bos_token_id=vocab[BOS], eos_token_id=vocab[EOS], pad_token_id=vocab[PAD]
    )
    model.save_pretrained(path)
    _rewrite_layout(path, family, layout)

    tokenizer = make_tokenizer(vocab, extra_special_tokens=FAMILY_IMAGE_TOKENS[family])
    processor = make_processor(family, tokenizer)
    processor.save_pretrained(path)  # processor_config.json, tokenizer, chat_template.jinja
    # Hub checkpoints also carry a standalone preprocessor_config.json (transformers 4
    # style), which tools that copy "tag-along" files look for.
    processor.image_processor.save_pretrained(path)
    return path


def _place_text_tower(
    family: str,
    text_state_dict: Mapping[str, torch.Tensor],
    vlm_weights: Mapping[str, torch.Tensor],
    text_vocab: Mapping[str, int],
    vocab: Mapping[str, int],
) -> StateDict:
    """The LLM tensors under the VLM's in-memory names, vocabulary rows moved by token string.

    Rows of tokens the LLM lacks keep their (random) values from ``vlm_weights``.
    """
    prefix = _MEMORY_TEXT_PREFIX[family]
    old_ids = torch.tensor([text_vocab[token] for token in text_vocab])
    new_ids = torch.tensor([vocab[token] for token in text_vocab])
    out: StateDict = {}
    for name, tensor in text_state_dict.items():
        target = "lm_head.weight" if name == "lm_head.weight" else prefix + name[len("model.") :]
        if name in ("model.embed_tokens.weight", "lm_head.weight"):
            rows = vlm_weights[target].float().clone()
            rows[new_ids] = tensor.float()[old_ids]
            tensor = rows
        out[target] = tensor
    return out


def _rewrite_layout(path: Path, family: str, layout: str) -> None:
    """Rename the tensors save_pretrained wrote to ``layout``; bytes, file names, the index
    and the ``{"format": "pt"}`` metadata stay as they were."""
    if not _LAYOUT_RENAMES[(family, layout)]:
        return
    index_path = path / "model.safetensors.index.json"
    for file in sorted(path.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            metadata = f.metadata() or {"format": "pt"}
            tensors = {layout_key(family, layout, k): f.get_tensor(k) for k in f.keys()}
        save_file(tensors, str(file), metadata=metadata)
    if index_path.exists():
        index = json.loads(index_path.read_text())
        index["weight_map"] = {layout_key(family, layout, k): v for k, v in index["weight_map"].items()}
        index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------
# Trios
# ---------------------------------------------------------------------------------------


def build_trio(
    root: PathLike,
    family: str = "llava",
    *,
    layout: str = "transformers5",
    seed: int = 0,
    num_layers: int = 2,
    hidden_size: int = 64,
    dtype: torch.dtype = torch.float32,
    permuted_vlm_vocab: bool = False,
) -> Trio:
    """Write ``root/{base,reasoning,vlm}``: a base LLM, its "reasoning fine-tune", and a VLM
    whose language tower was fine-tuned from the same base (independently)."""
    root = Path(root)
    family, layout = _family(family), _layout_name(layout)  # fail before writing anything
    text_kind = FAMILY_TEXT_KIND[family]
    base_weights = random_llm_state_dict(text_kind, seed=seed, num_layers=num_layers, hidden_size=hidden_size)
    trio = Trio(base=root / "base", reasoning=root / "reasoning", vlm=root / "vlm")
    build_llm(trio.base, text_kind, state_dict=base_weights, dtype=dtype)
    reasoning_weights = perturb(base_weights, seed, "reasoning_delta")
    build_llm(trio.reasoning, text_kind, state_dict=reasoning_weights, dtype=dtype)
    build_vlm(
        trio.vlm,
        family,
        text_state_dict=perturb(base_weights, seed, "vlm_delta"),
        layout=layout,
        seed=seed,
        dtype=dtype,
        permuted_vocab=permuted_vlm_vocab,
    )
    return trio


# ---------------------------------------------------------------------------------------
# Smoke generation
# ---------------------------------------------------------------------------------------


def demo_image(seed: int = 0, size: Tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE)):
    """A small RGB picture: a seeded noisy background with a filled square on it."""
    from PIL import Image, ImageDraw

    width, height = size
    g = _generator(seed, "demo_image")
    pixels = torch.randint(0, 256, (height, width, 3), generator=g, dtype=torch.uint8)
    image = Image.fromarray(pixels.numpy())  # HxWx3 uint8 -> RGB
    square = [width // 4, height // 4, 3 * width // 4, 3 * height // 4]
    ImageDraw.Draw(image).rectangle(square, fill=(220, 40, 40))
    return image


def generate_from_image(
    model_dir: PathLike,
    prompt: str = "What is shown? Answer:",
    max_new_tokens: int = 4,
    *,
    image=None,
    model=None,
    processor=None,
) -> str:
    """Greedy-generate an answer about ``image`` (default: ``demo_image()``) with the VLM in
    ``model_dir`` through its own processor and chat template; returns the new text only.

    ``model`` / ``processor`` may be passed to reuse already loaded ones.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = processor or AutoProcessor.from_pretrained(model_dir)
    model = model or AutoModelForImageTextToText.from_pretrained(model_dir)
    image = image if image is not None else demo_image()
    content = [{"type": "image", "image": image}, {"type": "text", "text": prompt}]
    messages = [{"role": "user", "content": content}]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    return processor.decode(new_tokens, skip_special_tokens=True)
