r"""Rule-based (judge-free) scoring of a model's response against a benchmark row.

``score(benchmark, row, response) -> ScoreResult(extracted, correct, method)``; ``row`` is the
row in the benchmark's Hub schema (``Item.row``). Deterministic: no model, no randomness.

Where the answer is looked for, in every benchmark:

1. the text after the last ``</think>`` (when there is text after it);
2. the content of the last ``\boxed{...}`` (or ``\fbox{...}``); else
3. the rest of the line after the last "answer is" / "Answer:" / "final answer:" /
   "option is" / "choice is" (the next line when that one is empty); else
4. the response when it is one line, else its last non-empty line.

Markdown emphasis (``**``, backticks) and LaTeX wrappers (``$``, ``\text{}``, ``\left``) are
ignored. An empty response gives ``extracted=None`` and is wrong.

Answer kinds (``method``):

* ``option-letter`` / ``option-text`` (multiple choice): a letter in the answer span
  ("The answer is (B).", "B. 3.5", "Answer: B", "\boxed{B}"; the article "A" of "A triangle
  ..." is no letter, and on the last line of a longer response only unmistakable forms count:
  "(B)", "B." at its start, "option B", a lone "B"), else an
  option's text ("3.5" when an option is "3.5", numerically or as whole words). Naming two
  different options ("A or C") is wrong; ``extracted`` is then "A/C".
* ``number``: the first number of the span (the last one without a box or marker) after
  the last "=" ("x = 3" -> 3); thousands commas, units and words are dropped ("1,000 people"
  -> 1000, "5 cm" -> 5), "3.50" = 3.5, ``\frac{1}{2}`` = 0.5, a percentage also matches its
  hundredth ("25%" = 25 = 0.25); LaTeX such as ``2\sqrt{3}`` is evaluated with math-verify.
  Equal within 1e-6 (relative) unless the benchmark says otherwise.
* ``math-verify``: symbolic equivalence of LaTeX/expressions through ``math_verify.parse`` /
  ``verify`` (``\boxed{\frac{\sqrt{3}}{2}}`` = ``\frac{\sqrt3}{2}``), with its timeouts on
  in the main thread (they use SIGALRM) and over-long inputs skipped. A decimal with two or
  more places answering a symbolic gold counts when the gold rounds to it (0.866 for
  ``\frac{\sqrt{3}}{2}``), reported as ``number``.
* ``list``: "[1, 2, 3]" or "1, 2, 3", element by element.
* ``text``: equal after lower-casing and dropping punctuation, or the gold as whole words of a
  short answer span.

Per benchmark:

* mathvista: ``question_type`` multi_choice -> option letter/text against ``choices`` (the gold
  is the option equal to ``answer``); free_form by ``answer_type``: integer -> number, float ->
  number rounded to ``precision`` decimals on both sides, list -> list, text -> text.
* mathverse: ``question_type`` multi-choice -> option letter (``answer`` is the letter; option
  texts are read from "Choices: A:... B:..." in ``question_for_eval``/``question``); free-form ->
  number when ``answer`` is a number (units and degrees dropped), else math-verify, else text.
* mathvision: non-empty ``options`` -> option letter (``answer`` is a letter); else as
  mathverse free-form.
* dynamath: ``answer_type`` multiple choice -> option letter (options "(A) .. (B) .." read from
  ``question``); float -> number within 0.001 of ``ground_truth``; text -> text.
* mmstar: option letter A-D (option texts from "Options: A: ..., B: ..." in ``question``).
* gsm8k: number equal to the value after "#### " in ``answer``.
* custom: by ``answer_type`` (multiple_choice with ``choices``; number; expression ->
  math-verify; text), inferred when absent (see ``benchmarks``).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from mergekit_vlm.errors import MergekitVlmError

LETTERS = "ABCDEFGHIJKLMNOP"
MAX_MATH_VERIFY_CHARS = 400  # longer candidates are not answers, and can make sympy hang
MATH_VERIFY_TIMEOUT_S = 3


@dataclass
class ScoreResult:
    extracted: Optional[str]  # the answer found in the response (None if none)
    correct: bool
    method: str  # "option-letter", "option-text", "number", "math-verify", "text", "list"


# ---------------------------------------------------------------------------------------
# Finding the answer span
# ---------------------------------------------------------------------------------------

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_MARKER = re.compile(
    r"\b(?:final\s+answer|answer|option|choice)\s*(?:is|should\s+be|would\s+be|will\s+be|[:：=])\s*[:：]?",
    re.IGNORECASE,
)


def _demarkdown(text: str) -> str:
    text = text.replace("**", "").replace("__", "").replace("`", "")
    return re.sub(r"^\s*#+\s*", "", text, flags=re.MULTILINE)


def _after_think(text: str) -> str:
    end = text.rfind("</think>")
    if end >= 0 and text[end + len("</think>"):].strip():
        return text[end + len("</think>"):]
    return text


def last_boxed(text: str) -> Optional[str]:
    """The content of the last ``\\boxed{...}``, braces balanced (None when there is none)."""
    starts = list(_BOXED.finditer(text))
    if not starts:
        m = list(re.finditer(r"\\boxed\s+([^\s$]+)", text))  # \boxed 5
        return m[-1].group(1) if m else None
    i = starts[-1].end()
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return text[i:]  # unclosed (cut off): the rest


def answer_span(response: str) -> Tuple[str, str]:
    """(span, where): where the final answer is, per the module docstring; where is
    "boxed", "marker", "whole" (a one-line response), "tail" (the last line) or "empty"."""
    text = _demarkdown(_after_think(response or ""))
    if not text.strip():
        return "", "empty"
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip(), "boxed"
    markers = list(_MARKER.finditer(text))
    if markers:
        rest = text[markers[-1].end():]
        lines = [line.strip() for line in rest.splitlines()]
        span = lines[0] if lines and lines[0] else next((line for line in lines if line), "")
        if span:
            return _trim(span), "marker"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _trim(lines[-1]), ("whole" if len(lines) == 1 else "tail")


def _trim(span: str) -> str:
    return span.strip().rstrip("。.").strip()  # the sentence's full stop, never a decimal point


# ---------------------------------------------------------------------------------------
# Normalisation and numbers
# ---------------------------------------------------------------------------------------

_LATEX_WRAPPERS = [
    (re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|operatorname|mbox)\s*\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\\(?:left|right|displaystyle|!|,|;|:|quad|qquad)"), " "),
    (re.compile(r"\^\s*\{?\\circ\}?|°|\\degree"), ""),
    (re.compile(r"\\%"), "%"),
    (re.compile(r"\\(?:approx|simeq|doteq)|≈"), "="),
    (re.compile(r"[−–]"), "-"),
    (re.compile(r"\\[dt]frac"), r"\\frac"),
]


def _delatex(text: str) -> str:
    text = text.replace("$", "").replace("\\(", "").replace("\\)", "").replace("\\[", "").replace("\\]", "")
    for pattern, repl in _LATEX_WRAPPERS:
        text = pattern.sub(repl, text)
    return text.strip()


def normalize_text(text: Any) -> str:
    """Lower case, LaTeX wrappers and punctuation dropped, spaces collapsed."""
    text = _delatex(_demarkdown(str(text))).lower()
    text = re.sub(r"[^\w\s.%+\-/=<>()\[\],:]", " ", text)
    text = re.sub(r"\s+", " ", text).strip(" .,:;!?'\"()[]")
    return text


_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+"
_NUMBER_RE = re.compile(rf"(?<![\w.])(?:{_NUMBER})(?:\s*%)?")
_PLAIN = re.compile(rf"^\s*\(?\s*({_NUMBER})\s*\)?\s*(%|percent)?\s*([A-Za-z][A-Za-z ]*|[²³]|\^\s*\{{?\d\}}?)*\s*$")
_FRAC = re.compile(rf"^\s*([-+])?\s*\\frac\s*\{{\s*({_NUMBER})\s*\}}\s*\{{\s*({_NUMBER})\s*\}}\s*$")
_SLASH = re.compile(rf"^\s*({_NUMBER})\s*/\s*({_NUMBER})\s*$")


@dataclass
class _Num:
    value: float
    percent: bool = False

    def text(self) -> str:
        v = self.value
        s = str(int(v)) if v.is_integer() and abs(v) < 1e15 else format(v, ".10g")
        return s + ("%" if self.percent else "")


def _to_float(token: str) -> float:
    return float(token.replace(",", ""))


def plain_number(text: Any) -> Optional[_Num]:
    """A number written plainly: "3.50", "1,000 people", "5 cm", "25%", "1/2", "\\frac{1}{2}"."""
    s = _delatex(str(text))
    m = _PLAIN.match(s)
    if m:
        return _Num(_to_float(m.group(1)), bool(m.group(2)))
    for pattern in (_FRAC, _SLASH):
        m = pattern.match(s)
        if m:
            sign, a, b = (m.group(1), m.group(2), m.group(3)) if pattern is _FRAC else (None, m.group(1), m.group(2))
            if _to_float(b) == 0:
                return None
            value = _to_float(a) / _to_float(b)
            return _Num(-value if sign == "-" else value)
    return None


def extract_number(span: str, where: str = "marker") -> Optional[_Num]:
    """The number a span answers with (see the module docstring), or None."""
    s = _delatex(span)
    if "=" in s:
        s = s.rsplit("=", 1)[1]  # "x = 3", "AB = 5 cm"
    found = plain_number(s)
    if found is not None:
        return found
    if "\\" in s or "sqrt" in s or "pi" in s:
        value = _math_verify_number(s)
        if value is not None:
            return _Num(value)
    numbers = list(_NUMBER_RE.finditer(s))
    if not numbers:
        return None
    token = (numbers[-1] if where in ("tail", "whole") else numbers[0]).group(0)
    percent = token.rstrip().endswith("%")
    return _Num(_to_float(token.rstrip(" %")), percent)


def numbers_equal(pred: _Num, gold: float, *, places: Optional[int] = None, abs_tol: Optional[float] = None) -> bool:
    candidates = [pred.value] + ([pred.value / 100] if pred.percent else [])
    for p in candidates:
        if places is not None:
            ok = math.isclose(round(p, places), round(gold, places), abs_tol=1e-9)
        elif abs_tol is not None:
            ok = abs(p - gold) <= abs_tol + 1e-12
        else:
            ok = math.isclose(p, gold, rel_tol=1e-6, abs_tol=1e-9)
        if ok:
            return True
    return False


# ---------------------------------------------------------------------------------------
# math-verify (lazy: sympy is slow to import)
# ---------------------------------------------------------------------------------------


def _math_verify():
    try:
        import math_verify
    except ImportError:
        raise MergekitVlmError(
            "scoring this answer needs math-verify: pip install 'math-verify[antlr4_13_2]'"
        ) from None
    return math_verify


def _timeout() -> Optional[int]:
    # math-verify's timeouts use SIGALRM, which only the main thread may set.
    return MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _as_latex(text: str) -> str:
    return text if ("$" in text or "\\boxed" in text) else f"${text}$"


def _mv_parse(text: str) -> list:
    if not text.strip() or len(text) > MAX_MATH_VERIFY_CHARS:
        return []
    mv = _math_verify()
    try:
        return mv.parse(_as_latex(text), parsing_timeout=_timeout())
    except Exception:  # a parser failure is "no answer", not a crash of the whole run
        return []


def _math_verify_number(text: str) -> Optional[float]:
    for parsed in _mv_parse(text):
        try:
            if getattr(parsed, "is_number", False) and parsed.is_real is not False:
                return float(parsed.evalf())
        except (TypeError, ValueError, AttributeError):
            continue
    return None


def math_verify_equal(gold: str, pred: str) -> Optional[bool]:
    """Symbolic equivalence; None when either side cannot be parsed."""
    g, p = _mv_parse(gold), _mv_parse(pred)
    if not g or not p:
        return None
    try:
        return bool(_math_verify().verify(g, p, timeout_seconds=_timeout()))
    except Exception:
        return False


# ---------------------------------------------------------------------------------------
# Answer kinds
# ---------------------------------------------------------------------------------------


def _letters_in(span: str, allowed: str, strict: bool) -> List[str]:
    s = _delatex(span)
    bare = re.sub(r"[\s()\[\]{}.:,;*'\"]", "", s).upper()
    if len(bare) == 1 and bare in allowed:  # "B", "(b)", "[C]."
        return [bare]
    if strict:  # last-line fallback: only forms that cannot be prose
        patterns = [r"\(([A-P])\)", r"^\s*([A-P])\s*[.):](?!\d)", r"\b(?i:option|choice|answer)\s*:?\s*\(?([A-P])\b"]
        hits = [(m.start(1), m.group(1)) for p in patterns for m in re.finditer(p, s)]
    else:
        hits = []
        for m in re.finditer(r"(?<![A-Za-z0-9_\\])([A-P])(?![A-Za-z0-9_'])", s):
            following = s[m.end():]
            # "A triangle ..." is the article; "A and C" / "A or C" still name option A.
            article = m.group(1) == "A" and re.match(r"\s+([a-z]+)", following)
            if article and article.group(1) not in ("and", "or", "nor"):
                continue
            hits.append((m.start(1), m.group(1)))
    out: List[str] = []
    for _, letter in sorted(hits):
        if letter in allowed and letter not in out:
            out.append(letter)
    return out


def _option_text_hits(span: str, options: Sequence[Any]) -> List[int]:
    ns = normalize_text(span)
    if not ns:
        return []
    norms = [normalize_text(o) for o in options]
    exact = [i for i, o in enumerate(norms) if o and o == ns]
    if exact:
        return exact[:1]
    pred = extract_number(span)
    numbers = [plain_number(o) for o in options]
    if pred is not None and any(n is not None for n in numbers):
        hits = [i for i, n in enumerate(numbers) if n is not None and numbers_equal(pred, n.value)]
        if hits:
            return hits
    hits = [i for i, o in enumerate(norms) if o and re.search(rf"(?<!\w){re.escape(o)}(?!\w)", ns)]
    # "3" is inside "3.5": keep the longest of nested matches.
    return [i for i in hits if not any(norms[i] != norms[j] and norms[i] in norms[j] for j in hits)]


def choose_option(response: str, options: Sequence[Any] = (), n_options: int = 0) -> Tuple[Optional[str], str]:
    """(letter, method) named by a response; "A/C" when it names several, None when none."""
    span, where = answer_span(response)
    if where == "empty":
        return None, "option-letter"
    allowed = LETTERS[: n_options or len(options) or 5]
    letters = _letters_in(span, allowed, strict=(where == "tail"))
    if letters:
        return "/".join(letters), "option-letter"
    if options:
        hits = _option_text_hits(span, options)
        if hits:
            return "/".join(LETTERS[i] for i in hits), "option-text"
    return None, "option-letter"


def gold_letter(
    answer: Any, options: Sequence[Any] = (), n_options: int = 0, *, letter_first: bool = True
) -> Optional[str]:
    """The gold option letter from an answer that is a letter or an option's text."""
    text = "" if answer is None else str(answer).strip()
    allowed = LETTERS[: n_options or len(options) or 5]
    as_letter = re.sub(r"[()\s.]", "", text).upper()
    is_letter = len(as_letter) == 1 and as_letter in allowed
    if letter_first and is_letter:
        return as_letter
    for i, option in enumerate(options):
        if str(option).strip() == text:
            return LETTERS[i]
    for i, option in enumerate(options):
        if normalize_text(option) == normalize_text(text):
            return LETTERS[i]
    return as_letter if is_letter else None


def score_choice(response: str, gold: Optional[str], options: Sequence[Any] = (), n_options: int = 0) -> ScoreResult:
    letter, method = choose_option(response, options, n_options)
    return ScoreResult(letter, letter is not None and gold is not None and letter == gold, method)


def score_number(
    response: str, gold: Any, *, places: Optional[int] = None, abs_tol: Optional[float] = None
) -> ScoreResult:
    span, where = answer_span(response)
    gold_num = plain_number(gold) if gold is not None else None
    if gold_num is None:
        return score_expression(response, gold)
    pred = extract_number(span, where) if where != "empty" else None
    if pred is None:
        return ScoreResult(None, False, "number")
    return ScoreResult(pred.text(), numbers_equal(pred, gold_num.value, places=places, abs_tol=abs_tol), "number")


def _rhs(text: str) -> str:
    return text.rsplit("=", 1)[1].strip() if "=" in text else text


def score_expression(response: str, gold: Any) -> ScoreResult:
    """Number when the gold is one, else math-verify, else text."""
    span, where = answer_span(response)
    if where == "empty":
        return ScoreResult(None, False, "math-verify")
    gold_text = "" if gold is None else str(gold).strip()
    gold_num = plain_number(gold_text)
    if gold_num is not None:
        pred = extract_number(span, where)
        if pred is not None:
            return ScoreResult(pred.text(), numbers_equal(pred, gold_num.value), "number")
    candidate = _delatex(span)
    decimals = re.fullmatch(r"\s*-?\d+\.(\d{2,})\s*", _rhs(candidate))
    if decimals:  # 0.866 for \frac{\sqrt{3}}{2}: equal to the decimals written
        gold_value = _math_verify_number(_rhs(gold_text))
        if gold_value is not None:
            places = len(decimals.group(1))
            ok = math.isclose(round(gold_value, places), float(_rhs(candidate)), abs_tol=1e-12)
            return ScoreResult(_rhs(candidate).strip(), ok, "number")
    # "y = 2x + 1" against "2x + 1" (or the reverse): compare the right-hand sides.
    if ("=" in candidate) != ("=" in gold_text):
        candidate, gold_cmp = _rhs(candidate), _rhs(gold_text)
    else:
        gold_cmp = gold_text
    equal = math_verify_equal(gold_cmp, candidate) if candidate else None
    if equal:
        return ScoreResult(candidate, True, "math-verify")
    if normalize_text(candidate) == normalize_text(gold_cmp):
        return ScoreResult(candidate, True, "text")
    return ScoreResult(candidate or None, False, "math-verify" if equal is not None else "text")


def score_text(response: str, gold: Any) -> ScoreResult:
    span, where = answer_span(response)
    if where == "empty":
        return ScoreResult(None, False, "text")
    pred, want = normalize_text(span), normalize_text(gold)
    # The gold as whole words counts in a short span only ("It is blue."), not in prose.
    short = where in ("boxed", "marker") or len(pred.split()) <= 6
    correct = bool(want) and (pred == want or (short and re.search(rf"(?<!\w){re.escape(want)}(?!\w)", pred) is not None))
    return ScoreResult(_delatex(span), correct, "text")


def _list_elements(text: str, numeric: bool = False) -> List[str]:
    s = _delatex(text)
    m = re.search(r"[\[(]([^\[\]()]*)[\])]", s)
    if m:
        s = m.group(1)
    elif numeric:  # "The heights are 1, 2, 3": the numbers, words around them dropped
        return [n.group(0).strip() for n in _NUMBER_RE.finditer(s)]
    return [e.strip() for e in re.split(r"[,;]", s) if e.strip()]


def score_list(response: str, gold: Any, *, places: Optional[int] = None) -> ScoreResult:
    span, where = answer_span(response)
    if where == "empty":
        return ScoreResult(None, False, "list")
    want = _list_elements(str(gold))
    pred = _list_elements(span, numeric=bool(want) and all(plain_number(w) is not None for w in want))
    extracted = "[" + ", ".join(pred) + "]"
    if len(pred) != len(want) or not want:
        return ScoreResult(extracted, False, "list")
    for p, g in zip(pred, want):
        g_num, p_num = plain_number(g), plain_number(p)
        if g_num is not None and p_num is not None:
            if not numbers_equal(p_num, g_num.value, places=places):
                return ScoreResult(extracted, False, "list")
        elif normalize_text(p) != normalize_text(g):
            return ScoreResult(extracted, False, "list")
    return ScoreResult(extracted, True, "list")


# ---------------------------------------------------------------------------------------
# Options written inside question texts
# ---------------------------------------------------------------------------------------


def options_from_text(question: Any) -> List[str]:
    """Option texts listed in a question: "(A) yes (B) no" (DynaMath), "Choices:\\nA:40°\\nB:60°"
    (MathVerse) or "Options: A: x, B: y" (MMStar). [] when none are found."""
    text = "" if question is None else str(question)
    for head in ("Options:", "Choices:", "Choice:", "choices:", "choice:"):
        i = text.rfind(head)
        if i >= 0:
            text = text[i + len(head):]
            break
    for pattern in (r"\(([A-H])\)\s*", r"(?:^|\n|,\s*|\s)([A-H])\s*[:：.)]\s*"):
        marks = list(re.finditer(pattern, text))
        letters = [m.group(1) for m in marks]
        if len(marks) >= 2 and letters == list(LETTERS[: len(letters)]):
            return [text[m.end(): nxt.start() if nxt else len(text)].strip().rstrip(",;").strip()
                    for m, nxt in zip(marks, marks[1:] + [None])]
    return []


# ---------------------------------------------------------------------------------------
# Per benchmark
# ---------------------------------------------------------------------------------------


def _precision(row: Mapping) -> Optional[int]:
    value = row.get("precision")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return int(value) if math.isfinite(value) else None


def score_mathvista(row: Mapping, response: str) -> ScoreResult:
    if row.get("question_type") == "multi_choice":
        choices = list(row.get("choices") or [])
        gold = gold_letter(row.get("answer"), choices, letter_first=False)
        return score_choice(response, gold, choices)
    answer_type = str(row.get("answer_type") or "").lower()
    if answer_type == "integer":
        return score_number(response, row.get("answer"))
    if answer_type == "float":
        return score_number(response, row.get("answer"), places=_precision(row))
    if answer_type == "list":
        return score_list(response, row.get("answer"), places=_precision(row))
    return score_text(response, row.get("answer"))


def score_mathverse(row: Mapping, response: str) -> ScoreResult:
    if str(row.get("question_type") or "").lower().replace("_", "-") == "multi-choice":
        options = options_from_text(row.get("question_for_eval") or row.get("question"))
        gold = gold_letter(row.get("answer"), options, len(options) or 5)
        return score_choice(response, gold, options, len(options) or 5)
    return score_expression(response, row.get("answer"))


def score_mathvision(row: Mapping, response: str) -> ScoreResult:
    options = list(row.get("options") or [])
    if options:
        return score_choice(response, gold_letter(row.get("answer"), options), options)
    return score_expression(response, row.get("answer"))


def score_dynamath(row: Mapping, response: str) -> ScoreResult:
    answer_type = str(row.get("answer_type") or "").lower()
    gold = row.get("ground_truth")
    if answer_type == "multiple choice":
        options = options_from_text(row.get("question"))
        return score_choice(response, gold_letter(gold, options), options)
    if answer_type == "float":
        return score_number(response, gold, abs_tol=1e-3)
    return score_text(response, gold)


def score_mmstar(row: Mapping, response: str) -> ScoreResult:
    options = options_from_text(row.get("question"))
    n = len(options) or 4
    return score_choice(response, gold_letter(row.get("answer"), options, n), options, n)


def score_gsm8k(row: Mapping, response: str) -> ScoreResult:
    gold = str(row.get("answer") or "").split("####")[-1].strip().replace(",", "")
    return score_number(response, gold)


_MCQ_TYPES = {"multiple_choice", "multiple-choice", "multiple choice", "multi_choice", "multi-choice", "mcq", "choice"}


def score_custom(row: Mapping, response: str) -> ScoreResult:
    choices = list(row.get("choices") or [])
    answer_type = str(row.get("answer_type") or "").strip().lower()
    if not answer_type:
        answer_type = "multiple_choice" if choices else ("number" if plain_number(row.get("answer")) else "expression")
    if answer_type in _MCQ_TYPES:
        return score_choice(response, gold_letter(row.get("answer"), choices, letter_first=True), choices)
    if answer_type == "number":
        return score_number(response, row.get("answer"))
    if answer_type == "text":
        return score_text(response, row.get("answer"))
    return score_expression(response, row.get("answer"))


SCORERS: Dict[str, Callable[[Mapping, str], ScoreResult]] = {
    "mathvista": score_mathvista,
    "mathverse": score_mathverse,
    "mathvision": score_mathvision,
    "dynamath": score_dynamath,
    "mmstar": score_mmstar,
    "gsm8k": score_gsm8k,
    "custom": score_custom,
}


def score(benchmark: str, item: Mapping, response: str) -> ScoreResult:
    """Score ``response`` against ``item``, a row in ``benchmark``'s Hub schema (an
    ``Item`` is accepted too: its ``row`` is used)."""
    scorer = SCORERS.get(str(benchmark).strip().lower())
    if scorer is None:
        raise MergekitVlmError(f"no scorer for benchmark {benchmark!r}; known: {', '.join(SCORERS)}")
    row = item if isinstance(item, Mapping) else getattr(item, "row", None)
    if not isinstance(row, Mapping):
        raise MergekitVlmError(
            f"score({benchmark!r}, ...): expected the benchmark row (a mapping), got {type(item).__name__}"
        )
    return scorer(row, "" if response is None else str(response))
