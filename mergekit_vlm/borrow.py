"""The ``borrow_language_tower`` merge: what a VLM merge is, decided before anything runs.

A merge that involves a VLM is analysed once, from the recipe and the models' configs, into a
:class:`VlmMerge`: which input is the host VLM (its vision tower, projector, layout, config and
processor are kept), which inputs are text LLMs donating to the language tower, and how the
tower tensors combine. :mod:`mergekit_vlm.plugin` turns that into mergekit's plan.

Per tensor, a cross-modal merge does one of three things:

* language-tower tensors (decoder layers, final norm) go to ``tower_method``, one of
  mergekit's own merge methods, over every input;
* embeddings / lm_head keep the VLM's rows (``embeddings: vlm``, the paper's choice), or
  merge the rows of tokens every tokenizer shares, aligned by token string, and keep the
  VLM's rows for VLM-only tokens (``embeddings: merge_shared``);
* everything else (vision tower, projector, ``image_newline``...) is the VLM's, bit for bit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from mergekit import merge_methods
from mergekit.common import ModelReference
from mergekit.config import MergeConfiguration
from mergekit.merge_methods import (
    BasePolicy,
    GroupMergeMethod,
    InputContract,
    MergeMethodSpec,
    ParameterScope,
    TensorGroup,
)
from mergekit.merge_methods.base import ParameterSpec
from typing_extensions import Literal

from mergekit_vlm.errors import MergekitVlmError
from mergekit_vlm.families import FAMILIES, VlmFamily, family_for_config, is_multimodal_config

LOG = logging.getLogger(__name__)

METHOD_NAME = "borrow_language_tower"
EMBEDDING_POLICIES = ("vlm", "merge_shared")
DEFAULT_TOWER_METHOD = "linear"
# Decoder geometry that must agree for tensors to line up layer by layer.
TEXT_DIM_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
)


class BorrowLanguageTower(GroupMergeMethod):
    """Registered so recipes can name it; mergekit-vlm plans it tensor by tensor.

    There is no single-tensor kernel: which tensors are the language tower, and which input
    is the VLM, is only known from the checkpoints, so the planner (see plugin.py) sends
    each tensor to ``tower_method`` or takes it from the VLM.
    """

    spec = MergeMethodSpec(
        name=METHOD_NAME,
        pretty_name="Borrow language tower (cross-modal)",
        reference_url="https://arxiv.org/abs/2505.05464",
        parameters=(
            ParameterSpec("tower_method", str, ParameterScope.SHARED, default=DEFAULT_TOWER_METHOD),
            ParameterSpec(
                "embeddings", Literal["vlm", "merge_shared"], ParameterScope.SHARED, default="vlm"
            ),
        ),
        contract=InputContract(base=BasePolicy.OPTIONAL),
        uses_accelerator=False,
    )

    def merge_group(self, group: TensorGroup, /, **parameters: Any) -> torch.Tensor:
        raise MergekitVlmError(
            f"{METHOD_NAME} is planned per tensor by mergekit-vlm from a recipe "
            "(mergekit-yaml or mergekit.merge.run_merge); it cannot merge a bare tensor group"
        )


@dataclass(frozen=True)
class VlmMerge:
    """What a recipe involving a VLM will do; see the module docstring."""

    family: VlmFamily
    vlm: ModelReference  # host: output layout, config, processor and non-tower tensors
    vlms: Tuple[ModelReference, ...]
    text_models: Tuple[ModelReference, ...]  # text LLM inputs, base included
    base_model: Optional[ModelReference]
    merge_method: str
    tower_method: str
    embeddings: str

    @property
    def cross_modal(self) -> bool:
        """One VLM + text LLMs (borrow the tower) rather than VLMs of one family merged whole."""
        return bool(self.text_models)

    @property
    def donors(self) -> Tuple[ModelReference, ...]:
        """Text LLMs whose weights enter the tower (the base is an ancestor, not a donor)."""
        return tuple(m for m in self.text_models if m != self.base_model)


def _plain_parameter(merge_config: MergeConfiguration, name: str, default: str) -> str:
    value = (merge_config.parameters or {}).get(name, default)
    if not isinstance(value, str):
        raise MergekitVlmError(
            f"parameters.{name} must be a single name (got {value!r}); it applies to the whole merge"
        )
    return value


def models_in_recipe_order(merge_config: MergeConfiguration) -> List[ModelReference]:
    """The recipe's models as the user wrote them (mergekit's referenced_models() order
    depends on the hash seed, so "the first VLM" would change from run to run)."""
    ordered: Dict[ModelReference, None] = {}
    for model_def in merge_config.models or ():
        ordered.setdefault(model_def.model, None)
    for slice_def in merge_config.slices or ():
        for source in slice_def.sources:
            ordered.setdefault(source.model, None)
    for model in merge_config.referenced_models():  # modules:, base_model
        ordered.setdefault(model, None)
    return list(ordered)


def analyze(merge_config: MergeConfiguration, trust_remote_code: bool = False) -> Optional[VlmMerge]:
    """Classify a recipe's models; None when no VLM is involved (plain mergekit applies)."""
    models = models_in_recipe_order(merge_config)
    configs = {m: m.config(trust_remote_code=trust_remote_code) for m in models}
    multimodal = [m for m in models if is_multimodal_config(configs[m])]
    text_models = tuple(m for m in models if m not in multimodal)
    borrow = merge_config.merge_method == METHOD_NAME

    if not multimodal:
        if borrow:
            raise MergekitVlmError(
                f"{METHOD_NAME} needs exactly one vision-language model among `models:`; "
                f"found none in {[str(m) for m in models]}"
            )
        return None

    families = {m: family_for_config(configs[m]) for m in multimodal}
    unknown = [m for m, fam in families.items() if fam is None]
    if unknown:
        if not borrow and not text_models:
            return None  # VLMs mergekit-vlm does not define: leave them to mergekit itself
        arch = (configs[unknown[0]].architectures or ["?"])[0]
        raise MergekitVlmError(
            f"{unknown[0]} is a {arch}, a vision-language family mergekit-vlm does not support yet "
            f"(supported: {', '.join(sorted(a for f in FAMILIES for a in f.architectures))}); "
            "merging it with text LLMs would silently drop or misplace its language tower"
        )
    kinds = {fam.key for fam in families.values()}
    if len(kinds) > 1:
        listing = ", ".join(f"{m} ({families[m].key})" for m in multimodal)
        raise MergekitVlmError(f"cannot merge VLMs of different families: {listing}")
    if len(multimodal) > 1 and (borrow or text_models):
        raise MergekitVlmError(
            f"{METHOD_NAME} takes exactly one VLM among `models:`; found {len(multimodal)}: "
            f"{', '.join(str(m) for m in multimodal)}"
        )

    vlm = multimodal[0]
    family = families[vlm]
    if borrow:
        tower_method = _plain_parameter(merge_config, "tower_method", DEFAULT_TOWER_METHOD)
        embeddings = _plain_parameter(merge_config, "embeddings", "vlm")
    else:
        tower_method, embeddings = merge_config.merge_method, "vlm"
        if text_models:
            LOG.info(
                "%s is a VLM mixed with text LLMs: merging its language tower with %s and keeping "
                "the rest from the VLM (as merge_method: %s would)",
                vlm, tower_method, METHOD_NAME,
            )
    try:
        method = merge_methods.get(tower_method)
    except RuntimeError:
        raise MergekitVlmError(
            f"unknown tower_method {tower_method!r}; use one of mergekit's merge methods, e.g. "
            "linear, task_arithmetic, ties, dare_ties, dare_linear, breadcrumbs"
        ) from None
    if tower_method == METHOD_NAME:
        raise MergekitVlmError(f"tower_method cannot be {METHOD_NAME} itself; pick e.g. linear or ties")
    if embeddings not in EMBEDDING_POLICIES:
        raise MergekitVlmError(
            f"parameters.embeddings must be one of {', '.join(EMBEDDING_POLICIES)} (got {embeddings!r})"
        )
    if method.spec.contract.base == BasePolicy.REQUIRED and merge_config.base_model is None:
        raise MergekitVlmError(
            f"tower_method {tower_method} needs `base_model:`, the text LLM both towers were "
            "fine-tuned from (e.g. meta-llama/Meta-Llama-3-8B for LLaVA-NeXT-Llama3)"
        )
    if text_models and (merge_config.tokenizer is not None or merge_config.tokenizer_source is not None):
        raise MergekitVlmError(
            "`tokenizer:` / `tokenizer_source:` cannot rebuild a VLM's vocabulary (its image tokens "
            "would be lost); drop it and use `parameters: {embeddings: merge_shared}` instead"
        )

    check_text_dims(vlm, configs[vlm], [(m, configs[m]) for m in models if m != vlm])
    return VlmMerge(
        family=family,
        vlm=vlm,
        vlms=tuple(multimodal),
        text_models=text_models,
        base_model=merge_config.base_model,
        merge_method=merge_config.merge_method,
        tower_method=tower_method,
        embeddings=embeddings,
    )


def check_text_dims(vlm: ModelReference, vlm_config, others: List[Tuple[ModelReference, Any]]) -> None:
    """Every other input's decoder must have the VLM text tower's geometry."""
    expected = vlm_config.get_text_config()
    for model, config in others:
        text = config.get_text_config()
        where = "text_config." if text is not config else ""
        for field in TEXT_DIM_FIELDS:
            want, got = getattr(expected, field, None), getattr(text, field, None)
            if want != got:
                raise MergekitVlmError(
                    f"text tower mismatch in {field}: {model} has {where}{field}={got} but the VLM "
                    f"{vlm} has text_config.{field}={want}; donors must be fine-tunes of the VLM's base LLM"
                )


# Hooks queued while this module imported mergekit can run now that it is complete.
from mergekit_vlm import _autoload  # noqa: E402

_autoload.run_pending()
