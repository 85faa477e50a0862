"""``run_eval`` end to end on tiny real VLMs: a LLaVA and its borrow_language_tower merge,
every benchmark's fixture data, predictions, resume, --rescore, report files, bad input."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import linear_recipe, run_recipe
from PIL import Image

from mergekit_vlm.errors import MergekitVlmError
from mergekit_vlm.evaluate import runner
from mergekit_vlm.evaluate.benchmarks import BENCHMARKS
from mergekit_vlm.evaluate.runner import read_predictions, run_eval
from mergekit_vlm.evaluate.scoring import score

FIXTURES = Path(__file__).parent / "fixtures" / "benchmarks"
BENCHES = ["mathvista", "mathverse", "mathvision", "dynamath", "mmstar", "gsm8k", "custom"]
DATA = {name: str(FIXTURES / name) for name in BENCHES}
LIMIT = 3
OPTIONS = dict(data=DATA, limit=LIMIT, max_new_tokens=6, batch_size=2, device="cpu", progress=False)
FIELDS = {"id", "prompt", "response", "extracted", "gold", "correct", "method", "subsets", "row"}


class Interrupted(Exception):
    """Stands for Ctrl-C / a crash in the middle of a run."""


class Counting:
    """Wraps runner.load_model: counts model loads, generate() batches and items."""

    def __init__(self, monkeypatch, fail_after_batches=None):
        self.loads = self.batches = self.items = 0
        real = runner.LoadedModel

        def load(spec, device, max_new_tokens):
            self.loads += 1
            model = real(spec, device, max_new_tokens)
            generate = model.generate

            def counted(items):
                if fail_after_batches is not None and self.batches >= fail_after_batches:
                    raise Interrupted
                self.batches += 1
                self.items += len(items)
                return generate(items)

            model.generate = counted
            return model

        monkeypatch.setattr(runner, "load_model", load)


@pytest.fixture(scope="module")
def models(trios, tmp_path_factory):
    trio = trios("llava")
    recipe = linear_recipe(trio.vlm, trio.reasoning, weight=0.9)  # = recipes/demo_tiny_llava.yml
    merged = run_recipe(recipe, tmp_path_factory.mktemp("merge") / "merged")
    return trio, merged


@pytest.fixture(scope="module")
def first_run(models, tmp_path_factory):
    """One complete run of [vlm, merged] on every benchmark; tests copy its folder before changing it."""
    trio, merged = models
    out = tmp_path_factory.mktemp("eval") / "out"
    with pytest.MonkeyPatch.context() as mp:
        counter = Counting(mp)
        summary = run_eval([str(trio.vlm), str(merged)], BENCHES, out, **OPTIONS)
    return out, summary, counter


def copy_run(first_run, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    return out


def results_only(summary):
    return json.loads(json.dumps(summary["results"]))


def test_every_benchmark_has_a_fixture():
    assert set(BENCHES) == set(BENCHMARKS)
    for name in BENCHES:
        assert (FIXTURES / name).exists(), name


def test_run_writes_predictions_summary_table_and_chart(models, first_run):
    trio, merged = models
    out, summary, counter = first_run
    names = [str(trio.vlm), str(merged)]
    assert counter.loads == 2  # each model loaded once for all benchmarks

    expected_n = {b: len(BENCHMARKS[b].load(DATA[b], limit=LIMIT)) for b in BENCHES}
    assert all(0 < n <= LIMIT for n in expected_n.values()), expected_n
    assert counter.items == 2 * sum(expected_n.values())

    saved = json.loads((out / "summary.json").read_text())
    assert saved["results"] == results_only(summary)
    assert list(saved["results"]) == names
    meta = saved["meta"]
    assert [m["slug"] for m in meta["models"]] == ["vlm", "merged"]
    assert meta["limit"] == LIMIT and meta["benchmarks"] == BENCHES and meta["judge"] is None
    assert meta["date"] and meta["versions"]["transformers"] and meta["split"]["mathvista"] == "testmini"

    for name, slug in zip(names, ["vlm", "merged"]):
        for bench in BENCHES:
            entry = saved["results"][name][bench]
            assert entry["n"] == expected_n[bench]
            assert entry["correct"] == round(entry["accuracy"] * entry["n"])
            assert set(entry["subsets"]) <= set(BENCHMARKS[bench].subset_keys())
            for key, labels in entry["subsets"].items():
                if key != "skills":  # multi-label: an item counts under each of its skills
                    assert sum(cell["n"] for cell in labels.values()) <= entry["n"]
                assert all(cell["n"] <= entry["n"] for cell in labels.values())
            assert ("worst_case" in entry) == (bench == "dynamath")

            records = read_predictions(out / "predictions" / slug / f"{bench}.jsonl")
            assert len(records) == expected_n[bench]
            assert len({r["id"] for r in records}) == len(records)
            for record in records:
                assert FIELDS <= set(record), set(record)
                assert isinstance(record["response"], str) and isinstance(record["correct"], bool)
                again = score(bench, record["row"], record["response"])
                assert (again.correct, again.extracted, again.method) == (
                    record["correct"], record["extracted"], record["method"])
            assert sum(r["correct"] for r in records) == entry["correct"]
        info = json.loads((out / "predictions" / slug / "model.json").read_text())
        assert info["source"] == str(Path(name).resolve())

    table = (out / "summary.md").read_text()
    assert "| Benchmark | n | vlm | merged | Δ merged |" in table
    for label in ("**MathVista**", "**MathVerse**", "**MathVision**", "**DynaMath**", "worst case", "**MMStar**",
                  "**GSM8K**", "**Custom**", "Average (7 benchmarks)", "· version: "):
        assert label in table, label
    with Image.open(out / "deltas.png") as png:
        assert png.format == "PNG" and png.size[0] > 500 and png.size[1] > 300


def test_interrupted_run_leaves_no_summary_then_resumes(models, first_run, tmp_path, monkeypatch):
    trio, merged = models
    out = tmp_path / "out"
    interrupted = Counting(monkeypatch, fail_after_batches=2)
    with pytest.raises(Interrupted):
        run_eval([str(trio.vlm), str(merged)], BENCHES, out, **OPTIONS)
    assert not (out / "summary.json").exists() and not (out / "summary.md").exists()
    written = [r for path in (out / "predictions").glob("*/*.jsonl") for r in read_predictions(path)]
    assert len(written) == interrupted.items > 0  # every finished batch was flushed
    partial = read_predictions(out / "predictions" / "vlm" / "mathvista.jsonl")
    assert 0 < len(partial) and len(written) == len(partial)
    # A write cut short by the interruption: half a JSON line at the end of the file.
    with open(out / "predictions" / "vlm" / "mathvista.jsonl", "a") as f:
        f.write('{"id": "half-writ')

    counter = Counting(monkeypatch)
    summary = run_eval([str(trio.vlm), str(merged)], BENCHES, out, **OPTIONS)
    total = sum(entry["n"] for model in summary["results"].values() for entry in model.values())
    assert counter.items == total - len(partial)  # only what was missing was generated
    assert (out / "summary.json").exists()
    for name in summary["results"]:
        for bench, entry in summary["results"][name].items():
            assert entry["n"] == first_run[1]["results"][name][bench]["n"]
    lines = (out / "predictions" / "vlm" / "mathvista.jsonl").read_text().splitlines()
    assert all(json.loads(line)["id"] != "half-writ" for line in lines)


def test_rerun_resumes_without_generating(models, first_run, tmp_path, monkeypatch):
    trio, merged = models
    out = copy_run(first_run, tmp_path)
    counter = Counting(monkeypatch)
    summary = run_eval([str(trio.vlm), str(merged)], BENCHES, out, **OPTIONS)
    assert counter.loads == 0 and counter.batches == 0  # nothing missing: no model is even loaded
    assert results_only(summary) == results_only(first_run[1])

    # Drop one prediction: the rerun loads that model only and generates that one item only.
    path = out / "predictions" / "merged" / "gsm8k.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))
    summary = run_eval([str(trio.vlm), str(merged)], BENCHES, out, **OPTIONS)
    assert (counter.loads, counter.items) == (1, 1)
    assert len(read_predictions(path)) == len(lines)
    assert summary["results"][str(merged)]["gsm8k"]["n"] == first_run[1]["results"][str(merged)]["gsm8k"]["n"]


def test_rescore_reproduces_scores_without_models_or_data(models, first_run, tmp_path, monkeypatch):
    trio, merged = models
    out = copy_run(first_run, tmp_path)
    # Corrupt the saved scores and drop the summary: --rescore must rebuild both.
    for path in (out / "predictions").glob("*/*.jsonl"):
        records = read_predictions(path)
        for record in records:
            record.update(correct=not record["correct"], extracted="garbage", method="stale")
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    for name in ("summary.json", "summary.md", "deltas.png"):
        (out / name).unlink()

    def forbidden(*args, **kwargs):
        raise AssertionError("--rescore must not load a model or read benchmark data")

    monkeypatch.setattr(runner, "load_model", forbidden)
    monkeypatch.setattr(runner, "inspect_model", forbidden)
    import transformers

    for cls in (transformers.AutoModelForImageTextToText, transformers.AutoModelForCausalLM, transformers.AutoConfig):
        monkeypatch.setattr(cls, "from_pretrained", forbidden)
    for bench in BENCHMARKS.values():
        monkeypatch.setattr(bench, "load", forbidden)

    summary = run_eval([str(trio.vlm), str(merged)], BENCHES, out, rescore=True, progress=False)
    assert results_only(summary) == results_only(first_run[1])
    assert json.loads((out / "summary.json").read_text())["meta"]["rescored"] is True
    assert (out / "summary.md").exists() and (out / "deltas.png").exists()
    for path in (out / "predictions").glob("*/*.jsonl"):
        assert all(r["method"] != "stale" for r in read_predictions(path))
    # Without --bench, every benchmark with saved predictions is rescored.
    summary = run_eval([str(trio.vlm), str(merged)], [], out, rescore=True, progress=False)
    assert set(summary["results"][str(merged)]) == set(BENCHES)


def test_text_llm_is_fine_for_text_only_benchmarks(trios, tmp_path):
    trio = trios("llava")
    out = tmp_path / "out"
    summary = run_eval([str(trio.base)], ["gsm8k"], out, **{**OPTIONS, "data": {"gsm8k": DATA["gsm8k"]}})
    assert summary["meta"]["models"][0]["kind"] == "llm"
    assert summary["results"][str(trio.base)]["gsm8k"]["n"] > 0
    assert (out / "summary.json").exists() and not (out / "deltas.png").exists()  # one model: nothing to compare


def _assert_clean_failure(out: Path, call, match: str):
    with pytest.raises(MergekitVlmError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
    assert not (out / "summary.json").exists() and not (out / "predictions").exists()
    return str(info.value)


def test_bad_input_fails_up_front_with_one_line(models, tmp_path, monkeypatch):
    trio, merged = models
    out = tmp_path / "out"
    counter = Counting(monkeypatch)
    vlm = str(trio.vlm)

    _assert_clean_failure(out, lambda: run_eval([vlm], ["mathvista", "mathvistaa"], out, **OPTIONS), "mathvistaa")

    bad = tmp_path / "bad_data"
    bad.mkdir()
    (bad / "rows.jsonl").write_text('{"pid": "1", "question": "What is 1+1?"}\n')
    message = _assert_clean_failure(
        out, lambda: run_eval([vlm], ["mathvista"], out, **{**OPTIONS, "data": {"mathvista": str(bad)}}), "column")
    assert "query" in message

    # A text LLM where images are needed; the VLM given first must not have generated anything.
    message = _assert_clean_failure(
        out, lambda: run_eval([vlm, str(trio.base)], ["gsm8k", "mathvista"], out, **OPTIONS), "vision")
    assert str(trio.base) in message and "mathvista" in message

    _assert_clean_failure(out, lambda: run_eval([vlm, str(tmp_path / "no_such_model")], ["mmstar"], out, **OPTIONS),
                          "no_such_model")
    _assert_clean_failure(out, lambda: run_eval([vlm], ["mmstar"], out, **{**OPTIONS, "data": {"mathvsta": "x"}}),
                          "mathvsta")
    _assert_clean_failure(out, lambda: run_eval([vlm, "no-such-owner/no-such-model"], ["mmstar"], out, **OPTIONS),
                          "no-such-owner/no-such-model")
    _assert_clean_failure(out, lambda: run_eval([vlm], ["mmstar"], out, rescore=True), "no saved predictions")
    assert counter.loads == 0


def test_option_parsing():
    assert runner.parse_benches(["MathVista,mmstar", "gsm8k", "mmstar"]) == ["mathvista", "mmstar", "gsm8k"]
    assert runner.parse_assignments(["mathvista=/d/mv", "mmstar = x/y"], "--data") == {
        "mathvista": "/d/mv", "mmstar": "x/y"}
    assert runner.parse_assignments(["test", "mathvista=testmini"], "--split", bare_key="*") == {
        "*": "test", "mathvista": "testmini"}
    with pytest.raises(MergekitVlmError, match="NAME=VALUE"):
        runner.parse_assignments(["/just/a/path"], "--data")


def test_cli_eval(models, tmp_path):
    """The `mergekit-vlm eval` command, once it is wired into mergekit_vlm/cli.py."""
    from click.testing import CliRunner

    from mergekit_vlm.cli import main

    if "eval" not in main.commands:
        pytest.skip("`mergekit-vlm eval` is not wired into the CLI yet")
    trio, merged = models
    out = tmp_path / "out"
    args = ["eval", str(trio.vlm), str(merged), "--bench", "mmstar,gsm8k", "--out", str(out), "--limit", "2",
            "--max-new-tokens", "4", "--device", "cpu", "--data", f"mmstar={DATA['mmstar']}",
            "--data", f"gsm8k={DATA['gsm8k']}"]
    ok = CliRunner().invoke(main, args)
    assert ok.exit_code == 0, ok.output
    assert json.loads((out / "summary.json").read_text())["meta"]["limit"] == 2
    again = CliRunner().invoke(main, ["eval", str(trio.vlm), str(merged), "--out", str(out), "--rescore"])
    assert again.exit_code == 0, again.output
    bad = CliRunner().invoke(main, ["eval", str(trio.vlm), "--bench", "nope", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 1 and "nope" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "bad").exists()
