"""Run transformers 4.x's own QuestionAnsweringPipeline on cases read from stdin; print results as JSON.

Started by tests in a subprocess whose PYTHONPATH puts transformers 4.57.1 first, so the reference is
the real pipeline the seed model cards used, not our reading of it.
"""

import json
import sys

import transformers
from transformers import pipeline

assert transformers.__version__.startswith("4."), transformers.__version__
transformers.logging.set_verbosity_error()
pipes = {}
results = []
for case in json.load(sys.stdin):
    if case["model"] not in pipes:
        pipes[case["model"]] = pipeline("question-answering", model=case["model"], device="cpu")
    results.append(pipes[case["model"]](case["inputs"], **case["kwargs"]))
json.dump(results, sys.stdout)
