"""Tests of ``mergekit_vlm.inspect``: the preflight report over tiny offline models."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from mergekit_vlm.errors import MergekitVlmError  # noqa: E402
from mergekit_vlm.factory import build_llm, build_trio  # noqa: E402
from mergekit_vlm.inspect import (  # noqa: E402
    ANCESTRY_THRESHOLD,
    format_report,
    inspect_models,
    report_to_json,
)

# (family, layout) -> (layout the family table calls it, language-tower prefix), written out
# by hand from the checkpoints' tensor names. Idefics2 has one set of names in every layout.
EXPECTED = {
    ("llava", "transformers5"): ("transformers5", "language_model.model."),
    ("llava", "hub4"): ("hub4", "language_model.model."),
    ("llava", "v5_memory"): ("v5_memory", "model.language_model."),
    ("llava_next", "hub4"): ("hub4", "language_model.model."),
    ("llava_next", "v5_memory"): ("v5_memory", "model.language_model."),
    ("idefics2", "transformers5"): ("hub4", "model.text_model."),
}
TINY_DIMS = dict(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128
)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("inspect")


@pytest.fixture(scope="module")
def trios(root):
    return {case: build_trio(root / "-".join(case), case[0], layout=case[1]) for case in EXPECTED}


@pytest.fixture(scope="module")
def trio(trios):
    return trios[("llava", "hub4")]


@pytest.fixture(scope="module")
def unrelated(root):
    """Same architecture and shapes as the trio's base, but another random initialisation."""
    return build_llm(root / "unrelated", "llama", seed=999)


@pytest.mark.parametrize("case", list(EXPECTED), ids=["-".join(c) for c in EXPECTED])
def test_family_layout_and_tower_detected(trios, case):
    family, _ = case
    trio = trios[case]
    report = inspect_models([str(trio.vlm), str(trio.reasoning)])
    vlm, llm = report.models
    layout, prefix = EXPECTED[case]

    assert (vlm.kind, vlm.family, vlm.layout, vlm.tower_prefix) == ("vlm", family, layout, prefix)
    assert vlm.num_layers == 2
    assert vlm.text_dims == TINY_DIMS
    assert vlm.vocab_size == vlm.tokenizer_size > llm.tokenizer_size
    assert vlm.dtype == "float32" and vlm.n_tensors > llm.n_tensors

    assert (llm.kind, llm.family, llm.layout, llm.tower_prefix) == ("llm", None, None, "model.")
    assert llm.text_dims == TINY_DIMS and llm.num_layers == 2
    assert report.mergeable, report.problems
    assert vlm.distance is None and llm.distance is None  # no base given


def test_fine_tunes_of_the_base_are_close(trio):
    report = inspect_models([str(trio.reasoning), str(trio.vlm)], base=str(trio.base))
    assert report.mergeable, report.problems
    assert report.base.kind == "llm" and report.base.distance is None
    for model in report.models:
        assert len(model.distance) == 2
        assert 0 < model.distance_median <= model.distance_max < 0.1


def test_base_listed_among_models_is_at_distance_zero(trio):
    report = inspect_models([str(trio.vlm), str(trio.base)], base=str(trio.base))
    assert report.mergeable, report.problems
    assert report.models[1].distance == [0.0, 0.0]
    assert 0 < report.models[0].distance_median < 0.1


def test_unrelated_llm_is_flagged(trio, unrelated):
    report = inspect_models([str(trio.vlm), str(unrelated)], base=str(trio.base))
    vlm, stranger = report.models
    assert stranger.distance_median > ANCESTRY_THRESHOLD
    assert vlm.distance_median < 0.1
    assert not report.mergeable
    (problem,) = report.problems
    assert str(unrelated) in problem and "ancestry" in problem


def test_text_dims_mismatch_names_field_and_values(trio, root):
    deeper = build_llm(root / "three_layers", "llama", num_layers=3)
    report = inspect_models([str(trio.vlm), str(deeper)])
    assert not report.mergeable
    (problem,) = [p for p in report.problems if "num_hidden_layers" in p]
    assert "num_hidden_layers=3" in problem and "num_hidden_layers=2" in problem
    assert str(deeper) in problem and str(trio.vlm) in problem


def test_vocabulary_overlap(trio):
    report = inspect_models([str(trio.vlm), str(trio.reasoning)], base=str(trio.base))
    base_size = report.base.tokenizer_size
    for llm in (report.models[1], report.base):
        overlap = llm.vocab_overlap
        assert overlap.shared == overlap.same_id == base_size
        assert overlap.vlm_only == ["<image>"] and overlap.vlm_only_count == 1
        assert overlap.llm_only_count == 0


def test_vocabulary_overlap_is_by_token_string(root):
    trio = build_trio(root / "permuted", "idefics2", permuted_vlm_vocab=True)
    report = inspect_models([str(trio.vlm), str(trio.reasoning)], base=str(trio.base))
    overlap = report.models[1].vocab_overlap
    assert overlap.shared == report.base.tokenizer_size
    assert overlap.same_id < overlap.shared  # ids were permuted, strings were not
    assert "<image>" in overlap.vlm_only and overlap.vlm_only_count == 3
    assert report.mergeable, report.problems
    assert any("other ids" in note for note in report.notes)


def test_two_llms_without_a_vlm(trio):
    report = inspect_models([str(trio.base), str(trio.reasoning)])
    assert not report.mergeable
    assert any("no vision-language model" in p for p in report.problems)


def test_unknown_vlm_family(root, trio):
    import shutil

    folder = root / "unknown_vlm"
    shutil.copytree(trio.vlm, folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["SomeNewVLForConditionalGeneration"]
    (folder / "config.json").write_text(json.dumps(config))

    report = inspect_models([str(folder), str(trio.reasoning)])
    assert report.models[0].kind == "unknown-vlm" and report.models[0].family is None
    assert not report.mergeable
    assert any("SomeNewVLForConditionalGeneration" in p for p in report.problems)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(MergekitVlmError, match=str(tmp_path)):
        inspect_models([str(tmp_path)])
    missing = tmp_path / "does" / "not" / "exist"
    with pytest.raises(MergekitVlmError, match=str(missing)):
        inspect_models([str(missing)])


def test_format_and_json(trio, unrelated):
    report = inspect_models([str(trio.vlm), str(trio.reasoning), str(unrelated)], base=str(trio.base))
    text = format_report(report)
    for expected in ("llava", "hub4", "language_model.model.", str(trio.reasoning), "PROBLEM:", "mergeable: no"):
        assert expected in text
    data = json.loads(json.dumps(report_to_json(report)))
    assert data["mergeable"] is False
    assert data["models"][0]["layout"] == "hub4"
    assert data["models"][1]["vocab_overlap"]["vlm_only"] == ["<image>"]
    assert data["models"][2]["distance_median"] > ANCESTRY_THRESHOLD
