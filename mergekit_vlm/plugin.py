"""Everything mergekit-vlm does to mergekit's internals, in one place.

mergekit has no plugin mechanism, so :mod:`mergekit_vlm._autoload` calls the ``install_*``
functions below right after the named mergekit module has been imported (inside the stock
``mergekit-yaml`` too). Each touch names the gap or bug it answers; ``tests/test_plugin.py``
pins every one, so an upstream change breaks a test rather than a user's merge.

Touches (mergekit 0.1.5):

1. ``json_definitions.NAME_TO_ARCH``: our JSON definitions replace the lists for our
   architecture names (gap: no way to add architectures from outside).
2. ``merge_methods.registry``: registers ``borrow_language_tower`` (public ``register()``).
3. ``merge.get_architecture_info``: a VLM merge gets the VLM's definition bound to the VLM's
   own checkpoint (bug: VLM + LLM falls back to auto-inference and writes a text-only model;
   ``--allow-crimes`` picks an architecture by hash order).
4. ``merge._model_out_config``: the output config is the VLM's (bug: it is the base model's,
   or whichever model comes first).
5. ``plan.MergePlanner.plan_tensor``: routes each tensor of a cross-modal merge (tower method,
   VLM only, or shared-vocabulary rows) and checks optional weights itself (bug: its optional
   check does ``[name] + aliases`` with a tuple and raises TypeError).
6. ``merge.run_merge``: VLM merges are checked first, written to a staging folder and moved
   into place only when complete, with the VLM's processor files and a model card.
7. ``common.ModelReference.local_path``: with ``HF_HUB_OFFLINE=1`` a Hub id resolves from the
   local Hub cache (bug: mergekit lists the repo's files online first, so offline merges of
   downloaded models fail).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

import torch
from mergekit import merge_methods
from mergekit.architecture.base import (
    ModelArchitecture,
    ModuleArchitecture,
    ModuleDefinition,
    WeightInfo,
)
from mergekit.common import ImmutableMap, ModelReference
from mergekit.graph import Task
from mergekit.io.tasks import GatherTensors
from mergekit.merge_methods import TensorGroup
from pydantic import Field

from mergekit_vlm.errors import MergekitVlmError
from mergekit_vlm.families import FAMILIES, architectures_dir

LOG = logging.getLogger(__name__)
TOWER_MODULE = "language_model"
EXTRAS_MODULE = "vlm_extra_tensors"


# --- 1. architecture definitions -----------------------------------------------------------


def load_definitions() -> Dict[str, ModelArchitecture]:
    """Our JSON files, parsed by mergekit's own loader, keyed by architecture name."""
    from mergekit.architecture.json_definitions import _load_architecture_json

    out = {}
    for family in FAMILIES:
        with open(os.path.join(architectures_dir(), family.architecture_json), encoding="utf-8") as fp:
            arch = _load_architecture_json(fp.read())
        for name in arch.architectures:
            out[name] = arch
    return out


def install_architectures(json_definitions) -> None:
    if getattr(json_definitions, "_mergekit_vlm_installed", False):
        return
    json_definitions._mergekit_vlm_installed = True
    for name, arch in load_definitions().items():
        # Replace, not append: two candidates for one name send mergekit to auto-inference.
        json_definitions.NAME_TO_ARCH[name] = [arch]
        json_definitions.JSON_ARCHITECTURES.append(arch)


# --- 2. the method ---------------------------------------------------------------------------

def install_method(registry) -> None:
    from mergekit_vlm import borrow

    if borrow.METHOD_NAME not in {m.spec.name for m in registry.registered_methods()}:
        registry.register(borrow.BorrowLanguageTower())


# --- 3. an architecture bound to the host VLM's checkpoint -------------------------------------


class BoundModule(ModuleArchitecture):
    """A module definition seen through the host VLM: its geometry and its tensor names.

    Every input is planned with the VLM's layer counts (the analysis already checked the text
    dims agree), so a text LLM never has to answer for a vision tower it does not have. Each
    weight is named as the VLM's checkpoint names it, the other layouts staying aliases, so
    the output keeps the VLM's on-disk layout.
    """

    def __init__(self, inner: ModuleArchitecture, vlm_config, vlm_tensors: FrozenSet[str]):
        self.inner = inner
        self.vlm_config = vlm_config
        self.vlm_tensors = vlm_tensors

    def _as_vlm_names(self, weights: List[WeightInfo]) -> List[WeightInfo]:
        out = []
        for w in weights:
            names = [w.name, *(w.aliases or ())]
            present = next((n for n in names if n in self.vlm_tensors), w.name)
            aliases = tuple(n for n in names if n != present)
            out.append(w.model_copy(update={"name": present, "aliases": aliases or None}))
        return out

    def pre_weights(self, config) -> List[WeightInfo]:
        return self._as_vlm_names(self.inner.pre_weights(self.vlm_config))

    def layer_weights(self, index: int, config) -> List[WeightInfo]:
        return self._as_vlm_names(self.inner.layer_weights(index, self.vlm_config))

    def post_weights(self, config) -> List[WeightInfo]:
        return self._as_vlm_names(self.inner.post_weights(self.vlm_config))

    def num_layers_config_key(self) -> str:
        return self.inner.num_layers_config_key()

    def num_layers(self, config) -> int:
        return self.inner.num_layers(self.vlm_config)


class ExtraTensors(ModuleArchitecture):
    """VLM tensors our definition does not list: kept rather than silently dropped."""

    def __init__(self, names: List[str]):
        self.names = names

    def pre_weights(self, config) -> List[WeightInfo]:
        return [WeightInfo(name=n) for n in self.names]

    def layer_weights(self, index: int, config) -> List[WeightInfo]:
        return []

    def post_weights(self, config) -> List[WeightInfo]:
        return []

    def num_layers_config_key(self) -> str:
        return ""

    def num_layers(self, config) -> int:
        return 0


class VlmBoundArchitecture(ModelArchitecture, frozen=True):
    """A ModelArchitecture that also carries the analysed merge, for the planner."""

    vlm_merge: Any = Field(default=None, exclude=True)
    tower_names: FrozenSet[str] = frozenset()

    def route(self, weight: WeightInfo) -> str:
        if weight.name not in self.tower_names:
            return "vlm"
        return "vocab" if weight.vocabulary_axis is not None else "tower"


def _index(model: ModelReference, options=None) -> Dict[str, str]:
    """tensor name -> shard of a model, from mergekit's loader cache (downloads Hub ids)."""
    from mergekit.io.tasks import LoaderCache

    cache = LoaderCache()
    if options is not None:
        cache.setup(options)
    return cache.get(model).index.tensor_paths


def tensor_names(model: ModelReference, options=None) -> FrozenSet[str]:
    return frozenset(_index(model, options))


def bind_architecture(merge, options) -> VlmBoundArchitecture:
    definition = load_definitions()[merge.family.architectures[0]]
    vlm_config = merge.vlm.config(trust_remote_code=options.trust_remote_code)
    present = tensor_names(merge.vlm, options)
    modules = {
        name: ModuleDefinition(architecture=BoundModule(m.architecture, vlm_config, present))
        for name, m in definition.modules.items()
    }
    covered = set()
    tower = set()
    for name, module in modules.items():
        for w in module.architecture.all_weights(vlm_config):
            covered.update([w.name, *(w.aliases or ()), *(w.tied_names or ())])
            if name == TOWER_MODULE:
                tower.add(w.name)
    extras = sorted(present - covered)
    if extras:
        LOG.warning(
            "%s has %d tensors the %s definition does not list (kept from the VLM): %s",
            merge.vlm, len(extras), merge.family.key, ", ".join(extras[:5]),
        )
        modules[EXTRAS_MODULE] = ModuleDefinition(architecture=ExtraTensors(extras))
    return VlmBoundArchitecture(
        modules=modules,
        architectures=list(definition.architectures),
        model_type=definition.expected_model_type,
        tagalong_files=None,  # the VLM's processor files are copied by output.finish_output
        vocab_size_config_key=definition.vocab_size_config_key,
        vlm_merge=merge,
        tower_names=frozenset(tower),
    )


# --- 5. the planner --------------------------------------------------------------------------


class LoadVocabulary(Task[Dict[str, int]]):
    """token string -> id of one model's tokenizer."""

    model: ModelReference
    trust_remote_code: bool = False

    def arguments(self) -> Dict[str, Task]:
        return {}

    def execute(self) -> Dict[str, int]:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(
            self.model.model.path,
            revision=self.model.model.revision,
            trust_remote_code=self.trust_remote_code,
        )
        return tokenizer.get_vocab()

    def uses_accelerator(self) -> bool:
        return False


class MergeSharedVocabulary(Task[torch.Tensor]):
    """Merge the rows of tokens every input knows, matched by token string; keep the VLM's others.

    Each input's rows are gathered into the VLM's token order, the tower method merges those
    aligned tensors, and every row whose token some input lacks (``<image>``, padding rows
    beyond the tokenizer) is the VLM's row, exactly.
    """

    gather_tensors: GatherTensors
    vocabularies: Tuple[LoadVocabulary, ...]  # in model_order
    vlm: ModelReference
    model_order: Tuple[ModelReference, ...]
    base_model: Optional[ModelReference]
    method_name: str
    parameters: ImmutableMap[str, Any]
    input_parameters: ImmutableMap[ModelReference, ImmutableMap[str, Any]]
    vocabulary_axis: int = 0

    def arguments(self) -> Dict[str, Task]:
        args: Dict[str, Task] = {"tensors": self.gather_tensors}
        args.update({f"vocab_{i}": v for i, v in enumerate(self.vocabularies)})
        return args

    def execute(self, tensors: Dict[ModelReference, torch.Tensor], **vocabs) -> torch.Tensor:
        vocab_of = {m: vocabs[f"vocab_{i}"] for i, m in enumerate(self.model_order)}
        host = tensors[self.vlm].movedim(self.vocabulary_axis, 0)
        host_vocab = vocab_of[self.vlm]
        shared = [
            tok
            for tok, idx in host_vocab.items()
            if idx < host.shape[0]
            and all(tok in vocab_of[m] and vocab_of[m][tok] < tensors[m].shape[self.vocabulary_axis] for m in self.model_order)
        ]
        if not shared:
            raise MergekitVlmError(
                "embeddings: merge_shared found no token shared by every tokenizer; use embeddings: vlm"
            )
        host_rows = torch.tensor([host_vocab[t] for t in shared])
        aligned = []
        for model in self.model_order:
            rows = torch.tensor([vocab_of[model][t] for t in shared])
            aligned.append(tensors[model].movedim(self.vocabulary_axis, 0).index_select(0, rows))
        per_input = {
            name: {m: self.input_parameters[m][name] for m in self.model_order if name in self.input_parameters[m]}
            for name in {n for p in self.input_parameters.values() for n in p}
        }
        group = TensorGroup.from_tensors(
            aligned,
            ids=list(self.model_order),
            base_index=self.model_order.index(self.base_model) if self.base_model in self.model_order else None,
            name="shared vocabulary rows",
            vocabulary_axis=0,  # methods treat token rows specially; keep that
        )
        (merged,) = merge_methods.get(self.method_name)(
            (group,), parameters={**dict(self.parameters.items()), **per_input}
        )
        out = host.clone()
        out[host_rows] = merged.to(out.dtype)
        LOG.info("merge_shared: %d of %d rows merged by token string", len(shared), host.shape[0])
        return out.movedim(0, self.vocabulary_axis)

    def group_label(self) -> Optional[str]:
        return self.gather_tensors.group_label()



def _has_tensor(model: ModelReference, weight: WeightInfo) -> bool:
    # Like mergekit's own optional check: tied names do not count (a tied lm_head stays absent).
    index = _index(model)
    return any(n in index for n in (weight.name, *(weight.aliases or ())))


def _required(weight: WeightInfo) -> WeightInfo:
    return weight.model_copy(update={"optional": False})


def _plan_with_method(planner, method_name, weight, weights_in, models, cfg_reader, original) -> None:
    """Plan one tensor with a given method through mergekit's own plan_tensor."""
    if weight.optional:
        if not any(_has_tensor(m, w) for m, w in zip(models, weights_in)):
            return  # absent everywhere: skip, as mergekit does
        # Present: plan it as required, which also keeps mergekit's buggy optional check away.
        weight, weights_in = _required(weight), [_required(w) for w in weights_in]
    saved = planner._method
    planner._method = merge_methods.get(method_name)
    try:
        original(planner, weight, weights_in, models, cfg_reader)
    finally:
        planner._method = saved


def _plan_shared_vocabulary(planner, merge, weight, weights_in, models, cfg_reader) -> None:
    from mergekit.parameter_resolver import resolve_parameters

    if weight.optional and not any(_has_tensor(m, w) for m, w in zip(models, weights_in)):
        return
    weights_in = [_required(w) for w in weights_in]
    method = merge_methods.get(merge.tower_method)
    shared, per_input = resolve_parameters(
        method.spec,
        tensor_name=weight.name,
        inputs={m: w.name for m, w in zip(models, weights_in)},
        sources=cfg_reader.parameter_sources,
        base_model=cfg_reader.base_model,
        t=cfg_reader.t,
    )
    trust = planner.options.trust_remote_code
    task = MergeSharedVocabulary(
        gather_tensors=GatherTensors(
            weight_info=ImmutableMap(data=dict(zip(models, weights_in))), dtype=planner.config.dtype
        ),
        vocabularies=tuple(LoadVocabulary(model=m, trust_remote_code=trust) for m in models),
        vlm=merge.vlm,
        model_order=tuple(models),
        base_model=cfg_reader.base_model,
        method_name=merge.tower_method,
        parameters=ImmutableMap(data=shared),
        input_parameters=ImmutableMap(data={m: ImmutableMap(data=p) for m, p in per_input.items()}),
        vocabulary_axis=weight.vocabulary_axis,
    )
    planner._tensors.append((_required(weight), task))


def _routed_plan_tensor(original):
    def plan_tensor(self, weight, weights_in, models, cfg_reader):
        merge = getattr(self.arch_info, "vlm_merge", None)
        if merge is None:
            return original(self, weight, weights_in, models, cfg_reader)
        if not merge.cross_modal:  # VLMs of one family: the recipe's method on every tensor
            return _plan_with_method(
                self, self.config.merge_method, weight, weights_in, models, cfg_reader, original
            )
        route = self.arch_info.route(weight)
        if route == "tower" or (route == "vocab" and merge.embeddings == "merge_shared"):
            if route == "vocab":
                return _plan_shared_vocabulary(self, merge, weight, weights_in, models, cfg_reader)
            return _plan_with_method(
                self, merge.tower_method, weight, weights_in, models, cfg_reader, original
            )
        host = models.index(merge.vlm)
        return _plan_with_method(
            self, "passthrough", weight, [weights_in[host]], [merge.vlm], cfg_reader, original
        )

    plan_tensor.__wrapped__ = original
    return plan_tensor


def install_planner(plan_module) -> None:
    planner = plan_module.MergePlanner
    if not hasattr(planner.plan_tensor, "__wrapped__"):
        planner.plan_tensor = _routed_plan_tensor(planner.plan_tensor)


# --- 7. offline Hub ids ---------------------------------------------------------------------


def install_offline_hub_cache(model_reference_cls) -> None:
    original = model_reference_cls.local_path
    if hasattr(original, "__wrapped__"):
        return

    def local_path(self, cache_dir=None, ignore_lora=False):
        from huggingface_hub import constants, snapshot_download

        if constants.HF_HUB_OFFLINE and not os.path.exists(self.model.path) and (ignore_lora or not self.lora):
            return snapshot_download(
                self.model.path, revision=self.model.revision, cache_dir=cache_dir, local_files_only=True
            )
        return original(self, cache_dir=cache_dir, ignore_lora=ignore_lora)

    local_path.__wrapped__ = original
    model_reference_cls.local_path = local_path


# --- 3, 4, 6. merge entry points -------------------------------------------------------------


def install_merge(merge_module) -> None:
    if hasattr(merge_module.run_merge, "__wrapped__"):
        return
    from mergekit.common import ModelReference

    from mergekit_vlm import borrow

    install_offline_hub_cache(ModelReference)
    original_arch = merge_module.get_architecture_info
    original_out_config = merge_module._model_out_config
    original_run_merge = merge_module.run_merge

    def get_architecture_info(config, options):
        merge = borrow.analyze(config, options.trust_remote_code)
        if merge is None:
            return original_arch(config, options)
        return bind_architecture(merge, options)

    def _model_out_config(config, arch_info, trust_remote_code=False):
        merge = getattr(arch_info, "vlm_merge", None)
        if merge is None:
            return original_out_config(config, arch_info, trust_remote_code=trust_remote_code)
        res = merge.vlm.config(trust_remote_code=trust_remote_code)
        if config.out_dtype or config.dtype:
            res.dtype = config.out_dtype or config.dtype
        return res

    def run_merge(merge_config, out_path, options, config_source=None):
        from mergekit_vlm import output

        merge = borrow.analyze(merge_config, options.trust_remote_code)
        if merge is None:
            return original_run_merge(merge_config, out_path, options, config_source=config_source)
        config_source = config_source or merge_config.to_yaml()  # before mergekit normalises it
        output.preflight(merge_config, out_path, options)
        with output.staging(out_path) as stage:
            original_run_merge(
                merge_config,
                stage,
                options.model_copy(update={"copy_tokenizer": False, "write_model_card": False}),
                config_source=config_source,
            )
            output.finish_output(stage, merge, config_source, options, name=os.path.basename(os.path.abspath(out_path)))

    get_architecture_info.__wrapped__ = original_arch
    _model_out_config.__wrapped__ = original_out_config
    run_merge.__wrapped__ = original_run_merge
    merge_module.get_architecture_info = get_architecture_info
    merge_module._model_out_config = _model_out_config
    merge_module.run_merge = run_merge


# Hooks queued while this module imported mergekit can run now that it is complete.
from mergekit_vlm import _autoload  # noqa: E402

_autoload.run_pending()
