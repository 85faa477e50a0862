"""mergekit-vlm's touches of mergekit internals, pinned: an upstream change fails here first."""

import importlib.metadata
import inspect
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import linear_recipe

import mergekit.common
import mergekit.merge
import mergekit.plan
from mergekit.architecture.json_definitions import NAME_TO_ARCH, _load_architecture_json

from mergekit_vlm import plugin
from mergekit_vlm.families import FAMILIES, architectures_dir

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **env})


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.key)
def test_json_definitions_parse_with_mergekits_loader_and_are_registered(family):
    text = (Path(architectures_dir()) / family.architecture_json).read_text()
    arch = _load_architecture_json(text)
    assert arch.architectures == list(family.architectures)
    assert "language_model" in arch.modules
    assert NAME_TO_ARCH[family.architectures[0]] == [arch]  # replaced, not appended


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.key)
def test_json_definitions_are_generated_from_the_family_table(family):
    generator = runpy.run_path(str(REPO / "architectures" / "generate.py"), run_name="not_main")
    assert (REPO / "architectures" / family.architecture_json).read_text() == generator["render"](family), (
        "run: python architectures/generate.py"
    )


@pytest.mark.parametrize("family,layout", [("llava", "hub4"), ("llava", "transformers5"), ("llava", "v5_memory"),
                                           ("llava_next", "hub4"), ("idefics2", "transformers5")])
def test_definitions_cover_every_tensor_of_real_checkpoints(trios, family, layout):
    from mergekit.common import ModelReference
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions

    from mergekit_vlm import borrow

    trio = trios(family, layout)
    config = MergeConfiguration.model_validate(linear_recipe(trio.vlm, trio.reasoning))
    merge = borrow.analyze(config)
    assert merge.vlm == ModelReference.model_validate(str(trio.vlm)) and merge.cross_modal
    arch = plugin.bind_architecture(merge, MergeOptions())
    assert plugin.EXTRAS_MODULE not in arch.modules  # nothing left to the safety net
    assert len(arch.tower_names) == 2 * 12 + 3  # 12 per decoder layer (optional qkv biases incl.) + embed, norm, lm_head


def test_every_patch_is_installed_over_the_function_it_expects():
    expected = {
        mergekit.merge.run_merge: ["merge_config", "out_path", "options", "config_source"],
        mergekit.merge.get_architecture_info: ["config", "options"],
        mergekit.merge._model_out_config: ["config", "arch_info", "trust_remote_code"],
        mergekit.plan.MergePlanner.plan_tensor: ["self", "weight", "weights_in", "models", "cfg_reader"],
        mergekit.common.ModelReference.local_path: ["self", "cache_dir", "ignore_lora"],
    }
    for patched, params in expected.items():
        original = patched.__wrapped__
        assert list(inspect.signature(original).parameters) == params, original
    # The planner internals the router relies on.
    source = inspect.getsource(mergekit.plan.MergePlanner)
    for needle in ("self._method", "self._tensors.append((weight, tensor_task))", "cfg_reader.base_model"):
        assert needle in source


def test_mergekit_optional_alias_bug_still_there():
    """plan.py's optional check concatenates a list and a tuple; when this fails upstream
    fixed it, and plugin._plan_with_method can stop marking present optional weights required."""
    source = inspect.getsource(mergekit.plan.MergePlanner.plan_tensor.__wrapped__)
    assert "[w_in.name] + (w_in.aliases or [])" in source


def test_method_is_registered_with_its_spec():
    from mergekit import merge_methods

    method = merge_methods.get("borrow_language_tower")
    assert {p.name for p in method.spec.parameters} == {"tower_method", "embeddings"}


def test_entry_point_declared_for_future_mergekit_plugin_loading():
    eps = importlib.metadata.entry_points(group="mergekit.plugins")
    assert any(ep.value == "mergekit_vlm.plugin" for ep in eps)


def test_startup_costs_nothing_heavy():
    result = run_python("import sys; print('torch' in sys.modules, 'mergekit' in sys.modules, "
                        "'mergekit_vlm._autoload' in sys.modules)")
    assert result.stdout.split() == ["False", "False", "True"], result.stderr


def test_activates_inside_plain_import_and_can_be_switched_off():
    code = ("import mergekit.merge as m; from mergekit import merge_methods as mm; "
            "print(hasattr(m.run_merge, '__wrapped__'), any(x.spec.name == 'borrow_language_tower' "
            "for x in mm.registered_methods()))")
    assert run_python(code).stdout.split() == ["True", "True"]
    assert run_python(code, MERGEKIT_VLM_DISABLE="1").stdout.split() == ["False", "False"]


def test_stock_mergekit_yaml_end_to_end(trios, tmp_path):
    trio = trios("llava_next", "hub4")
    recipe = tmp_path / "recipe.yml"
    recipe.write_text(yaml.safe_dump(linear_recipe(trio.vlm, trio.reasoning)))
    mergekit_yaml = os.path.join(os.path.dirname(PYTHON), "mergekit-yaml")
    result = subprocess.run([mergekit_yaml, str(recipe), str(tmp_path / "out")], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["architectures"] == ["LlavaNextForConditionalGeneration"]
    from test_merge import assert_loads_cleanly

    assert_loads_cleanly(tmp_path / "out")


@pytest.mark.parametrize("first", ["mergekit_vlm.borrow", "mergekit.config", "mergekit.io.tasks", "mergekit.architecture"])
def test_activation_survives_any_first_import(first):
    """Hooks wait for mergekit's import graph to settle, whatever the user imports first."""
    code = (f"import {first}; import mergekit.merge as m, mergekit.plan as p; from mergekit import merge_methods as mm; "
            "from mergekit.architecture.json_definitions import NAME_TO_ARCH as N; "
            "print(hasattr(m.run_merge, '__wrapped__'), hasattr(p.MergePlanner.plan_tensor, '__wrapped__'), "
            "mm.get('borrow_language_tower').spec.name, 'language_model' in N['Idefics2ForConditionalGeneration'][0].modules)")
    result = run_python(code)
    assert result.stdout.split() == ["True", "True", "borrow_language_tower", "True"], result.stderr[-2000:]
