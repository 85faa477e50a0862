"""Benchmark loading from the committed fixtures (tests/fixtures/benchmarks, each in its Hub
dataset's layout and schema), other data sources, limits, errors and DynaMath's metrics."""

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mergekit_vlm.errors import MergekitVlmError
from mergekit_vlm.evaluate import score
from mergekit_vlm.evaluate import benchmarks as B
from mergekit_vlm.evaluate.benchmarks import (
    BENCHMARKS,
    Item,
    dynamath_average,
    dynamath_worst_case,
    get_benchmark,
    load_rows,
)

FIXTURES = Path(__file__).parent / "fixtures" / "benchmarks"
TEXT_ONLY = {"gsm8k"}


def _check_items(bench, items):
    assert items
    assert len({item.id for item in items}) == len(items)
    for item in items:
        assert isinstance(item, Item) and item.benchmark == bench.name
        assert isinstance(item.id, str) and item.id
        assert item.prompt.strip() and item.gold.strip()
        assert set(bench.subset_keys()) <= set(item.subsets) or bench.name == "custom"
        json.dumps(item.row)  # JSON-serialisable: image columns are gone
        assert "decoded_image" not in item.row
        assert all(isinstance(im, Image.Image) for im in item.images)
        for im in item.images:
            im.load()  # really decodable


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_loads_fixture(name):
    bench = get_benchmark(name)
    items = bench.load(str(FIXTURES / name))
    _check_items(bench, items)
    if name not in TEXT_ONLY:
        assert any(item.images for item in items)
    else:
        assert not any(item.images for item in items)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_fixture_golds_score_correct(name):
    """The prompt/gold side and the scorer agree: the gold, boxed, is marked correct."""
    for item in get_benchmark(name).load(str(FIXTURES / name)):
        gold = item.gold.split(" (")[0]  # "B (equal to)" -> "B"
        result = score(name, item.row, f"Reasoning...\nThe answer is \\boxed{{{gold}}}.")
        assert result.correct, (item.id, item.gold, result)
        assert not score(name, item.row, "").correct


def test_mathvista_items():
    items = get_benchmark("mathvista").load(str(FIXTURES / "mathvista"))
    first = items[0]
    assert [i.id for i in items] == ["1", "2", "3", "4"]
    assert first.prompt == first.row["query"] and "Choices:" in first.prompt
    assert first.gold == "B (equal to)"
    assert first.subsets == {"category": "math-targeted-vqa", "task": "textbook question answering", "skills": ["algebraic reasoning"]}
    assert items[1].subsets["category"] == "general-vqa"
    assert items[1].subsets["skills"] == ["arithmetic reasoning", "statistical reasoning"]
    assert first.row["image"] == "images/1.jpg"  # the path column stays; decoded_image is the image
    assert first.images[0].size == (16, 16)


def test_mathverse_versions_and_text_only():
    bench = get_benchmark("mathverse")
    items = bench.load(str(FIXTURES / "mathverse"))
    versions = ["Text Dominant", "Vision Intensive", "Vision Only", "Text Lite", "Vision Dominant"]
    assert [i.subsets["version"] for i in items] == versions
    assert all(i.prompt == i.row["query_cot"] for i in items)
    assert items[2].prompt.startswith("According to the question shown in the image")
    assert items[0].subsets["subject"] == "Plane Geometry"
    text_only = bench.load(str(FIXTURES / "mathverse"), split="testmini_text_only")
    assert [i.id for i in text_only] == ["1", "2"] and all(not i.images for i in text_only)


def test_mathvision_splits_and_prompts():
    bench = get_benchmark("mathvision")
    mini = bench.load(str(FIXTURES / "mathvision"))
    assert [i.id for i in mini] == ["1", "2", "3", "4"]
    assert "(C) 5" in mini[0].prompt and "letter" in mini[0].prompt and mini[0].gold == "C (5)"
    assert "Choices" not in mini[2].prompt and mini[2].gold == "2\\sqrt{3}"
    assert mini[2].subsets == {"subject": "metric geometry - length", "level": "4"}
    assert [i.id for i in bench.load(str(FIXTURES / "mathvision"), split="test")] == ["101", "102"]


def test_dynamath_all_variants_seed_major():
    items = get_benchmark("dynamath").load(str(FIXTURES / "dynamath"))
    assert len(items) == 30
    assert [i.id for i in items[:11]] == [f"1-v{k}" for k in range(1, 11)] + ["5-v1"]
    assert items[3].subsets == {"variant": "4", "subject": "analytic geometry", "knowledge_level": "high school",
                                "answer_type": "float"}
    assert items[3].gold == "1.2566"  # 2 pi / 5: each variant has its own ground truth
    assert "letter" in items[10].prompt  # multiple choice instruction
    one = get_benchmark("dynamath").load(str(FIXTURES / "dynamath"), split="sample_variant7")
    assert [i.id for i in one] == ["1-v7", "5-v7", "21-v7"]


def test_gsm8k_and_custom():
    items = get_benchmark("gsm8k").load(str(FIXTURES / "gsm8k"))
    assert [i.id for i in items] == ["0", "1", "2"] and [i.gold for i in items] == ["1000", "10", "25"]
    custom = get_benchmark("custom").load(str(FIXTURES / "custom"))
    assert [len(i.images) for i in custom] == [1, 2, 0, 0]
    assert custom[1].gold == "B (the second)" and "(B) the second" in custom[1].prompt
    assert custom[0].subsets == {"subset": "geometry"} and custom[3].subsets == {}
    assert custom[1].row["images"] == ["images/q2a.png", "images/q2b.png"]  # paths stay in the row
    # the file itself works as well as its folder
    assert [i.id for i in get_benchmark("custom").load(str(FIXTURES / "custom" / "data.jsonl"))] == ["q1", "q2", "q3", "q4"]


def test_limit():
    assert len(get_benchmark("mathvista").load(str(FIXTURES / "mathvista"), limit=2)) == 2
    assert get_benchmark("mmstar").load(str(FIXTURES / "mmstar"), limit=0) == []
    items = get_benchmark("dynamath").load(str(FIXTURES / "dynamath"), limit=12)
    assert [i.id for i in items] == [f"1-v{k}" for k in range(1, 11)] + ["5-v1", "5-v2"]
    assert len(get_benchmark("custom").load(str(FIXTURES / "custom"), limit=3)) == 3


def test_save_to_disk_dataset_and_datasetdict(tmp_path):
    datasets = pytest.importorskip("datasets")
    table = pq.read_table(FIXTURES / "mathvista" / "data" / "testmini-00000-of-00001.parquet")
    datasets.Dataset(table).save_to_disk(str(tmp_path / "mv"))
    items = get_benchmark("mathvista").load(str(tmp_path / "mv"), limit=3)
    assert [i.id for i in items] == ["1", "2", "3"]
    assert all(isinstance(i.images[0], Image.Image) for i in items)

    folder = FIXTURES / "mathvision" / "data"
    dd = datasets.DatasetDict({split: datasets.Dataset(pq.read_table(folder / f"{split}-00000-of-00001.parquet"))
                               for split in ("testmini", "test")})
    dd.save_to_disk(str(tmp_path / "mvis"))
    bench = get_benchmark("mathvision")
    assert [i.id for i in bench.load(str(tmp_path / "mvis"), split="test")] == ["101", "102"]
    assert len(bench.load(str(tmp_path / "mvis"))) == 4


def test_jsonl_with_image_paths(tmp_path):
    rows = load_rows(str(FIXTURES / "mathvista"), "AI4Math/MathVista", "testmini")
    assert len(rows) == 4 and set(rows[0]["decoded_image"]) == {"bytes", "path"}
    (tmp_path / "images").mkdir()
    with open(tmp_path / "testmini.jsonl", "w") as f:
        for row in rows:
            (tmp_path / row["image"].replace(".jpg", ".png")).write_bytes(row.pop("decoded_image")["bytes"])
            row["image"] = row["image"].replace(".jpg", ".png")
            f.write(json.dumps(row) + "\n")
    items = get_benchmark("mathvista").load(str(tmp_path))  # the folder: testmini.jsonl is the split
    assert [i.id for i in items] == ["1", "2", "3", "4"]
    assert all(i.images and i.images[0].size == (16, 16) for i in items)
    assert items[0].row["image"] == "images/1.png"


def test_single_parquet_file_and_one_file_dynamath(tmp_path):
    items = get_benchmark("mmstar").load(str(FIXTURES / "mmstar" / "mmstar.parquet"))
    assert [i.id for i in items] == ["0", "1", "2", "3"]
    assert items[1].subsets == {"category": "math", "l2_category": "geometry"}
    # Every DynaMath variant in one file: a seed's k-th row is its variant k.
    files = [FIXTURES / "dynamath" / "data" / f"sample{k}-00000-of-00001.parquet" for k in range(1, 11)]
    pq.write_table(pa.concat_tables([pq.read_table(f) for f in files]), tmp_path / "dynamath_all.parquet")
    one = get_benchmark("dynamath").load(str(tmp_path / "dynamath_all.parquet"))
    assert [i.id for i in one] == [i.id for i in get_benchmark("dynamath").load(str(FIXTURES / "dynamath"))]
    assert [i.gold for i in one[:3]] == ["3.1416", "2.0944", "1.5708"]


def test_hub_loading_uses_config_and_split(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(repo, config=None, split=None):
        calls.append((repo, config, split))
        name = {"AI4Math/MathVerse": "mathverse", "openai/gsm8k": "gsm8k"}[repo]
        rows = load_rows(str(FIXTURES / name), None, split, config=config)
        return datasets.Dataset.from_list(rows) if name == "gsm8k" else datasets.Dataset(
            pq.read_table(FIXTURES / "mathverse" / f"{split}.parquet"))

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    verse = get_benchmark("mathverse").load(split="testmini_text_only")
    assert [i.id for i in verse] == ["1", "2"]
    assert len(get_benchmark("mathverse").load(limit=2)) == 2
    assert [i.gold for i in get_benchmark("gsm8k").load()] == ["1000", "10", "25"]
    assert calls == [("AI4Math/MathVerse", "testmini_text_only", "testmini_text_only"),
                     ("AI4Math/MathVerse", "testmini", "testmini"), ("openai/gsm8k", "main", "test")]


def test_missing_columns_named(tmp_path):
    table = pq.read_table(FIXTURES / "mathvista" / "data" / "testmini-00000-of-00001.parquet")
    (tmp_path / "data").mkdir()
    pq.write_table(table.drop(["query", "answer_type"]), tmp_path / "data" / "testmini-00000-of-00001.parquet")
    with pytest.raises(MergekitVlmError) as e:
        get_benchmark("mathvista").load(str(tmp_path))
    assert str(tmp_path) in str(e.value) and "query" in str(e.value) and "answer_type" in str(e.value)
    # no image column at all
    pq.write_table(table.drop(["decoded_image", "image"]), tmp_path / "data" / "testmini-00000-of-00001.parquet")
    with pytest.raises(MergekitVlmError, match="decoded_image or image"):
        get_benchmark("mathvista").load(str(tmp_path))
    (tmp_path / "bad.jsonl").write_text('{"id": "1", "question": "q"}\n')
    with pytest.raises(MergekitVlmError, match="answer"):
        get_benchmark("custom").load(str(tmp_path / "bad.jsonl"))


def test_bad_names_and_sources(tmp_path):
    with pytest.raises(MergekitVlmError) as e:
        get_benchmark("mathvistaa")
    assert all(name in str(e.value) for name in BENCHMARKS)
    assert get_benchmark(" MathVista ") is BENCHMARKS["mathvista"]
    with pytest.raises(MergekitVlmError, match="unknown split"):
        get_benchmark("mmstar").load(str(FIXTURES / "mmstar"), split="test")
    with pytest.raises(MergekitVlmError, match="no such file"):
        get_benchmark("mmstar").load(str(tmp_path / "nothing.parquet"))
    with pytest.raises(MergekitVlmError, match="--data"):
        get_benchmark("custom").load()
    with pytest.raises(MergekitVlmError, match="not valid JSON"):
        (tmp_path / "broken.jsonl").write_text("{nope\n")
        get_benchmark("custom").load(str(tmp_path / "broken.jsonl"))
    shutil.copytree(FIXTURES / "custom", tmp_path / "custom")
    (tmp_path / "custom" / "images" / "q1.png").unlink()
    with pytest.raises(MergekitVlmError, match="q1.png not found"):
        get_benchmark("custom").load(str(tmp_path / "custom"))


def test_dynamath_worst_case_and_average():
    items = get_benchmark("dynamath").load(str(FIXTURES / "dynamath"))
    # seed 1 always right, seed 5 wrong on one variant, seed 21 always wrong
    results = [(i, i.row["id"] == "1" or (i.row["id"] == "5" and i.subsets["variant"] != "3")) for i in items]
    assert dynamath_worst_case(results) == pytest.approx(1 / 3)
    assert dynamath_average(results) == pytest.approx(19 / 30)
    # prediction records (mappings) work too
    records = [({"id": i.id, "row": i.row}, ok) for i, ok in results]
    assert dynamath_worst_case(records) == pytest.approx(1 / 3)
    assert dynamath_worst_case([]) == 0.0
    assert B._dynamath_seed({"id": "17-v3"}) == "17"
