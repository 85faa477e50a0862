"""``mergekit-vlm eval``: judge-free math/vision benchmarks.

``benchmarks`` loads the data (Hub schemas) and builds prompts, ``scoring`` decides whether a
response is right with rules only. Importing this package is cheap: no torch, no datasets.
"""

from mergekit_vlm.evaluate.scoring import ScoreResult, score

__all__ = ["ScoreResult", "score"]
