"""Rule-based scoring: realistic responses, right and wrong, for every benchmark and answer
type, with rows in each benchmark's Hub schema."""

import threading
import time

import pytest

from mergekit_vlm.errors import MergekitVlmError
from mergekit_vlm.evaluate import ScoreResult, score
from mergekit_vlm.evaluate.scoring import answer_span, options_from_text

# --- rows in the Hub schemas (only the columns scoring reads, plus ids) -----------------

MATHVISTA_MC = {
    "pid": "1", "question": "The derivative of f(x) at x=2 is ____ that at x=5", "image": "images/1.jpg",
    "choices": ["2.5", "3.5", "4"], "unit": None, "precision": None, "answer": "3.5",
    "question_type": "multi_choice", "answer_type": "text",
    "metadata": {"category": "math-targeted-vqa", "task": "textbook question answering", "skills": ["algebraic reasoning"]},
    "query": "Hint: ...\nChoices:\n(A) 2.5\n(B) 3.5\n(C) 4",
}
MATHVISTA_INT = {"pid": "2", "choices": None, "unit": None, "precision": None, "answer": "1000",
                 "question_type": "free_form", "answer_type": "integer"}
MATHVISTA_INT3 = dict(MATHVISTA_INT, pid="5", answer="3")
MATHVISTA_FLOAT = {"pid": "3", "choices": None, "unit": None, "precision": 1.0, "answer": "0.5",
                   "question_type": "free_form", "answer_type": "float"}
MATHVISTA_FLOAT2 = dict(MATHVISTA_FLOAT, pid="6", precision=2.0, answer="1.45")
MATHVISTA_LIST = {"pid": "4", "choices": None, "unit": None, "precision": None, "answer": "[1, 2, 3]",
                  "question_type": "free_form", "answer_type": "list"}
MATHVISTA_TEXT = {"pid": "7", "choices": None, "unit": None, "precision": None, "answer": "Yes",
                  "question_type": "free_form", "answer_type": "text"}

MATHVERSE_MC = {
    "sample_index": "1", "problem_index": "1", "problem_version": "Text Dominant", "answer": "D",
    "question_type": "multi-choice", "metadata": {"subject": "Plane Geometry", "subfield": "Angle"},
    "question": "... then the size of angle CED is ()\nChoices:\nA:40°\nB:60°\nC:120°\nD:140°",
    "question_for_eval": "... then the size of angle CED is ()\nChoices:\nA:40°\nB:60°\nC:120°\nD:140°",
}
MATHVERSE_VISION_ONLY = dict(MATHVERSE_MC, sample_index="5", problem_version="Vision Only", question="", question_for_eval="")
MATHVERSE_FREE = {"sample_index": "6", "problem_version": "Text Lite", "answer": "\\frac{\\sqrt{3}}{2}",
                  "question_type": "free-form", "question": "Find sin 60°."}
MATHVERSE_FREE_NUM = {"sample_index": "7", "problem_version": "Vision Dominant", "answer": "60°",
                      "question_type": "free-form", "question": "Find the angle."}

MATHVISION_MC = {"id": "1", "question": "How many triangles?\n<image1>", "options": ["3", "4", "5", "6", "7"],
                 "answer": "C", "solution": None, "level": 2, "subject": "counting"}
MATHVISION_FREE = {"id": "3", "question": "Height?", "options": [], "answer": "2\\sqrt{3}", "level": 4,
                   "subject": "metric geometry - length"}
MATHVISION_HALF = {"id": "9", "question": "Probability?", "options": [], "answer": "\\frac{1}{2}", "level": 3,
                   "subject": "combinatorics"}

DYNAMATH_MC = {"id": "5", "question": "Is Dark Magenta greater than Rosy Brown? Choices: (A) yes (B) no",
               "ground_truth": "B", "answer_type": "multiple choice", "subject": "statistics",
               "knowledge_level": "elementary school"}
DYNAMATH_FLOAT = {"id": "1", "question": "What is the period of this function? Answer the question with a floating-point number.",
                  "ground_truth": "2.0944", "answer_type": "float", "subject": "analytic geometry",
                  "knowledge_level": "high school"}
DYNAMATH_TEXT = {"id": "21", "question": "What time is shown? Please answer in the form like __:__.",
                 "ground_truth": "5:0", "answer_type": "text", "subject": "arithmetic", "knowledge_level": "elementary school"}

MMSTAR = {"index": 1, "question": "What is the area of the shaded triangle?\nOptions: A: 6, B: 8, C: 12, D: 24",
          "answer": "C", "category": "math", "l2_category": "geometry"}
MMSTAR_TEXT = {"index": 0, "answer": "B", "category": "instance reasoning", "l2_category": "object relation",
               "question": "Which option describe the object relationship in the image correctly?\n"
                           "Options: A: The cup is on the book., B: The cup is beneath the table., C: The cup is beneath the bed., D: The cup is beneath the book."}

GSM8K = {"question": "A shop sells 250 pencils a day. How many in 4 days?",
         "answer": "In 4 days it sells 250 * 4 = <<250*4=1000>>1000 pencils.\n#### 1,000"}

CUSTOM_NUM = {"id": "q1", "question": "Area?", "answer": "16", "answer_type": "number"}
CUSTOM_MC = {"id": "q2", "question": "Which?", "choices": ["circle", "square"], "answer": "square"}
CUSTOM_EXPR = {"id": "q3", "question": "Factor x^2 - 1.", "answer": "(x-1)(x+1)", "answer_type": "expression"}
CUSTOM_TEXT = {"id": "q4", "question": "Sky colour?", "answer": "blue", "answer_type": "text"}

# (benchmark, row, response, extracted, correct, method)
CASES = [
    # MathVista multiple choice: letters in every usual form, option text, ambiguity, empty
    ("mathvista", MATHVISTA_MC, "The answer is (B).", "B", True, "option-letter"),
    ("mathvista", MATHVISTA_MC, "B. 3.5", "B", True, "option-letter"),
    ("mathvista", MATHVISTA_MC, "B", "B", True, "option-letter"),
    ("mathvista", MATHVISTA_MC, "Answer: B", "B", True, "option-letter"),
    ("mathvista", MATHVISTA_MC, "**Answer:** (B)", "B", True, "option-letter"),
    ("mathvista", MATHVISTA_MC, "The slope is the same at both points, so\n\\boxed{B}", "B", True, "option-letter"),
    ("mathvista", MATHVISTA_MC, "3.5", "B", True, "option-text"),
    ("mathvista", MATHVISTA_MC, "The answer is 4", "C", False, "option-text"),
    ("mathvista", MATHVISTA_MC, "The answer is (A).", "A", False, "option-letter"),
    ("mathvista", MATHVISTA_MC, "The answer is A or B.", "A/B", False, "option-letter"),
    ("mathvista", MATHVISTA_MC, "A triangle is drawn; its slope gives 3.5", "B", True, "option-text"),
    ("mathvista", MATHVISTA_MC, "", None, False, "option-letter"),
    ("mathvista", MATHVISTA_MC, "<think>Maybe A, maybe C.</think>\nThe answer is (B).", "B", True, "option-letter"),
    # MathVista free form: integer / float with precision / list / text
    ("mathvista", MATHVISTA_INT, "1,000 people", "1000", True, "number"),
    ("mathvista", MATHVISTA_INT, "There were 1000 people in total.", "1000", True, "number"),
    ("mathvista", MATHVISTA_INT, "The answer is 999.", "999", False, "number"),
    ("mathvista", MATHVISTA_INT3, "x = 3", "3", True, "number"),
    ("mathvista", MATHVISTA_INT3, "x = 4", "4", False, "number"),
    ("mathvista", MATHVISTA_INT, "I cannot tell from the picture.", None, False, "number"),
    ("mathvista", MATHVISTA_FLOAT, "\\boxed{\\frac{1}{2}}", "0.5", True, "number"),
    ("mathvista", MATHVISTA_FLOAT, "0.5", "0.5", True, "number"),
    ("mathvista", MATHVISTA_FLOAT, "The answer is 0.50.", "0.5", True, "number"),
    ("mathvista", MATHVISTA_FLOAT, "50%", "50%", True, "number"),
    ("mathvista", MATHVISTA_FLOAT, "0.6", "0.6", False, "number"),
    ("mathvista", MATHVISTA_FLOAT2, "Answer: 1.449", "1.449", True, "number"),
    ("mathvista", MATHVISTA_FLOAT2, "Answer: 1.4", "1.4", False, "number"),
    ("mathvista", MATHVISTA_FLOAT, "", None, False, "number"),
    ("mathvista", MATHVISTA_LIST, "[1, 2, 3]", "[1, 2, 3]", True, "list"),
    ("mathvista", MATHVISTA_LIST, "The heights are 1, 2, 3.", "[1, 2, 3]", True, "list"),
    ("mathvista", MATHVISTA_LIST, "Final answer: [1, 3, 2]", "[1, 3, 2]", False, "list"),
    ("mathvista", MATHVISTA_TEXT, "Yes.", "Yes", True, "text"),
    ("mathvista", MATHVISTA_TEXT, "No", "No", False, "text"),
    # MathVerse: letter MCQ (choices parsed from the question), Vision Only, free form
    ("mathverse", MATHVERSE_MC, "Angle CED = 180° - 40° = 140°, so the answer is D.", "D", True, "option-letter"),
    ("mathverse", MATHVERSE_MC, "140°", "D", True, "option-text"),
    ("mathverse", MATHVERSE_MC, "The answer is C: 120°", "C", False, "option-letter"),
    ("mathverse", MATHVERSE_MC, "It is either B or D.", "B/D", False, "option-letter"),
    ("mathverse", MATHVERSE_VISION_ONLY, "Reading the figure ...\nAnswer: D", "D", True, "option-letter"),
    ("mathverse", MATHVERSE_MC, "Angle A is 80° and angle B is 60°.\nSo CED is 140°, option D.", "D", True, "option-letter"),
    ("mathverse", MATHVERSE_MC, "A line through A and B.\nSo angle CED is 140 degrees", "D", True, "option-text"),
    ("mathverse", MATHVERSE_FREE, "\\boxed{\\frac{\\sqrt3}{2}}", "\\frac{\\sqrt3}{2}", True, "math-verify"),
    ("mathverse", MATHVERSE_FREE, "The answer is $\\frac{\\sqrt{3}}{2}$.", "\\frac{\\sqrt{3}}{2}", True, "math-verify"),
    ("mathverse", MATHVERSE_FREE, "sin 60° ≈ 0.866", "0.866", True, "number"),
    ("mathverse", MATHVERSE_FREE, "\\boxed{\\frac{1}{2}}", "\\frac{1}{2}", False, "math-verify"),
    ("mathverse", MATHVERSE_FREE_NUM, "The angle is 60 degrees.", "60", True, "number"),
    ("mathverse", MATHVERSE_FREE_NUM, "\\boxed{30^\\circ}", "30", False, "number"),
    # MathVision: options -> letters; free form -> number / math-verify
    ("mathvision", MATHVISION_MC, "\\boxed{C}", "C", True, "option-letter"),
    ("mathvision", MATHVISION_MC, "There are five triangles: \\boxed{5}", "C", True, "option-text"),
    ("mathvision", MATHVISION_MC, "The answer is E", "E", False, "option-letter"),
    ("mathvision", MATHVISION_FREE, "\\boxed{2\\sqrt{3}}", "2\\sqrt{3}", True, "math-verify"),
    ("mathvision", MATHVISION_FREE, "So the height is \\boxed{\\sqrt{12}}", "\\sqrt{12}", True, "math-verify"),
    ("mathvision", MATHVISION_FREE, "\\boxed{4}", "4", False, "math-verify"),
    ("mathvision", MATHVISION_HALF, "0.5", "0.5", True, "number"),
    ("mathvision", MATHVISION_HALF, "\\boxed{\\frac{2}{4}}", "0.5", True, "number"),
    # DynaMath: multiple choice / float within 0.001 / text
    ("dynamath", DYNAMATH_MC, "\\boxed{B}", "B", True, "option-letter"),
    ("dynamath", DYNAMATH_MC, "The answer is no.", "B", True, "option-text"),
    ("dynamath", DYNAMATH_MC, "(A) yes", "A", False, "option-letter"),
    ("dynamath", DYNAMATH_FLOAT, "The period is 2π/3 ≈ \\boxed{2.094}", "2.094", True, "number"),
    ("dynamath", DYNAMATH_FLOAT, "\\boxed{\\frac{2\\pi}{3}}", "2.094395102", True, "number"),
    ("dynamath", DYNAMATH_FLOAT, "\\boxed{2.1}", "2.1", False, "number"),
    ("dynamath", DYNAMATH_TEXT, "The clock shows \\boxed{5:0}", "5:0", True, "text"),
    ("dynamath", DYNAMATH_TEXT, "\\boxed{6:0}", "6:0", False, "text"),
    # MMStar: letters A-D, option text
    ("mmstar", MMSTAR, "C", "C", True, "option-letter"),
    ("mmstar", MMSTAR, "The answer is (C).", "C", True, "option-letter"),
    ("mmstar", MMSTAR, "answer: (c)", "C", True, "option-letter"),
    ("mmstar", MMSTAR, "12", "C", True, "option-text"),
    ("mmstar", MMSTAR, "B", "B", False, "option-letter"),
    ("mmstar", MMSTAR, "A and C", "A/C", False, "option-letter"),
    ("mmstar", MMSTAR_TEXT, "The cup is beneath the table.", "B", True, "option-text"),
    ("mmstar", MMSTAR, "", None, False, "option-letter"),
    # GSM8K: the number after ####
    ("gsm8k", GSM8K, "250 * 4 = 1000. The answer is 1,000.", "1000", True, "number"),
    ("gsm8k", GSM8K, "\\boxed{1000}", "1000", True, "number"),
    ("gsm8k", GSM8K, "It sells $1000 worth... no wait, 250 + 4 = 254", "254", False, "number"),
    # Custom: every answer_type
    ("custom", CUSTOM_NUM, "The area is 16 square units.", "16", True, "number"),
    ("custom", CUSTOM_NUM, "The area is 15 square units.", "15", False, "number"),
    ("custom", CUSTOM_NUM, "\\boxed{16 \\text{ cm}^2}", "16", True, "number"),
    ("custom", CUSTOM_MC, "\\boxed{B}", "B", True, "option-letter"),
    ("custom", CUSTOM_MC, "square", "B", True, "option-text"),
    ("custom", CUSTOM_MC, "circle", "A", False, "option-text"),
    ("custom", CUSTOM_EXPR, "\\boxed{x^2 - 1}", "x^2 - 1", True, "math-verify"),
    ("custom", CUSTOM_EXPR, "\\boxed{x^2 + 1}", "x^2 + 1", False, "math-verify"),
    ("custom", CUSTOM_TEXT, "It is blue.", "It is blue", True, "text"),
    ("custom", CUSTOM_TEXT, "Green", "Green", False, "text"),
]


@pytest.mark.parametrize("bench,row,response,extracted,correct,method", CASES,
                         ids=[f"{c[0]}-{i}-{c[2][:30]!r}" for i, c in enumerate(CASES)])
def test_score(bench, row, response, extracted, correct, method):
    result = score(bench, row, response)
    assert isinstance(result, ScoreResult)
    assert (result.extracted, result.correct, result.method) == (extracted, correct, method)


def test_deterministic():
    for bench, row, response, *_ in CASES[::7]:
        assert score(bench, row, response) == score(bench, row, response)


def test_answer_span_priorities():
    assert answer_span("First \\boxed{1}, then \\boxed{\\frac{2}{3}}.") == ("\\frac{2}{3}", "boxed")
    assert answer_span("Reasoning.\nThe final answer is: 42.\nThanks!") == ("42", "marker")
    assert answer_span("Answer:\n\n  7") == ("7", "marker")
    assert answer_span("line one\nline two 5\n\n") == ("line two 5", "tail")
    assert answer_span("<think>thinking \\boxed{1}</think>So it is 2.") == ("So it is 2", "whole")
    assert answer_span("   ") == ("", "empty")


def test_options_from_text():
    assert options_from_text(DYNAMATH_MC["question"]) == ["yes", "no"]
    assert options_from_text(MATHVERSE_MC["question"]) == ["40°", "60°", "120°", "140°"]
    assert options_from_text(MMSTAR["question"]) == ["6", "8", "12", "24"]
    assert options_from_text("How many sides does a square have?") == []


def test_unknown_benchmark_and_bad_item():
    with pytest.raises(MergekitVlmError, match="mathvista"):
        score("nosuchbench", {}, "A")
    with pytest.raises(MergekitVlmError, match="mapping"):
        score("mmstar", 42, "A")


def test_accepts_item_objects():
    class FakeItem:
        row = MMSTAR

    assert score("mmstar", FakeItem(), "C").correct


def test_math_verify_off_the_main_thread():
    # math-verify's timeouts use SIGALRM, which fails outside the main thread: none are set there.
    out = {}
    thread = threading.Thread(target=lambda: out.update(r=score("mathvision", MATHVISION_FREE, "\\boxed{\\sqrt{12}}")))
    thread.start()
    thread.join(30)
    assert out["r"].correct and out["r"].method == "math-verify"


def test_pathological_input_is_fast():
    start = time.time()
    result = score("mathverse", MATHVERSE_FREE, "\\boxed{" + "(" * 300 + "x^{x^{x^{x}}}" + ")" * 300 + "}")
    assert not result.correct
    result = score("custom", CUSTOM_EXPR, "9" * 5000)
    assert not result.correct
    assert time.time() - start < 10
