"""The seeds' pipeline face: same call shapes, same dicts, same answers and scores as transformers 4.x."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corpusqa.reader import pipeline

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / ".cache" / "transformers4"
#: The last 4.x release with the question-answering pipeline, and the tokenizers/hub versions it accepts.
REFERENCE_PINS = ["transformers==4.57.1", "tokenizers==0.22.1", "huggingface-hub==0.36.0"]
ARCHS = ("bert-uncased", "bert-cased", "electra", "roberta")

CONTEXT = (
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in "
    "France. They were descended from Norse raiders and pirates from Denmark, Iceland and Norway who, under "
    "their leader Rollo, agreed to swear fealty to King Charles III of West Francia. Through generations of "
    "assimilation and mixing with the native Frankish and Roman-Gaulish populations, their descendants would "
    "gradually merge with the Carolingian-based cultures of West Francia. The distinct cultural and ethnic "
    "identity of the Normans emerged initially in the first half of the 10th century, and it continued to "
    "evolve over the succeeding centuries. Café naïve: Zürich 東京 😀 co-operation, U.S.A.; 1,000.5 km."
)
CASES = [
    ({"question": "In what country is Normandy located?", "context": CONTEXT}, {}),
    ({"question": "Who was the Norse leader?", "context": CONTEXT}, {"top_k": 3}),
    ({"question": "When were the Normans in Normandy?", "context": CONTEXT}, {"top_k": 4, "handle_impossible_answer": True}),
    ({"question": "What is Zürich?", "context": CONTEXT}, {"top_k": 3, "align_to_words": False}),
    ({"question": "Who?", "context": CONTEXT * 3}, {"top_k": 5, "max_seq_len": 96, "doc_stride": 32}),
    ({"question": "How far?", "context": CONTEXT}, {"top_k": 2, "max_answer_len": 3}),
]


@pytest.fixture(scope="session")
def transformers4() -> Path:
    """transformers 4.57.1 in a private folder (installed from PyPI on first use), for the reference subprocess."""
    if not (REFERENCE / "transformers" / "__init__.py").is_file():
        print(f"installing the transformers 4.x reference into {REFERENCE}")
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(REFERENCE), *REFERENCE_PINS],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot install the transformers 4.x reference from PyPI: {done.stderr.strip()[-300:]}")
    return REFERENCE


def reference_answers(reference: Path, cases: list[dict]) -> list:
    env = {**os.environ, "PYTHONPATH": str(reference), "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "reference" / "transformers4_qa.py")],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(done.stdout)


def assert_same(ours, theirs):
    ours, theirs = (x if isinstance(x, list) else [x] for x in (ours, theirs))
    assert [(a["answer"], a["start"], a["end"]) for a in ours] == [(a["answer"], a["start"], a["end"]) for a in theirs]
    assert [a["score"] for a in ours] == pytest.approx([a["score"] for a in theirs], rel=1e-4, abs=1e-9)


def test_answers_and_scores_equal_transformers4_for_every_seed_architecture(tiny_models, transformers4):
    cases = [
        {"model": str(tiny_models[arch]), "inputs": inputs, "kwargs": kwargs}
        for arch in ARCHS
        for inputs, kwargs in CASES
    ]
    expected = reference_answers(transformers4, cases)
    pipes = {arch: pipeline("question-answering", model=tiny_models[arch], device="cpu", dtype="float32") for arch in ARCHS}
    for case, theirs in zip(cases, expected):
        arch = next(a for a in ARCHS if str(tiny_models[a]) == case["model"])
        assert_same(pipes[arch](case["inputs"], **case["kwargs"]), theirs)


@pytest.fixture(scope="module")
def qa(tiny_models):
    return pipeline(tiny_models["bert-uncased"], device="cpu")


def test_returns_the_seed_cards_dict(qa):
    answer = qa({"question": "Who?", "context": CONTEXT})
    assert list(answer) == ["score", "start", "end", "answer"]
    assert answer["answer"] == CONTEXT[answer["start"] : answer["end"]]
    assert isinstance(answer["score"], float) and 0 < answer["score"] <= 1


def test_top_k_gives_a_list_and_every_call_shape_works(qa):
    assert len(qa(question="Who?", context=CONTEXT, top_k=3)) == 3
    pair = qa("Who?", CONTEXT)
    assert qa(question="Who?", context=CONTEXT) == pair
    assert qa([{"question": "Who?", "context": CONTEXT}, {"question": "Where?", "context": CONTEXT}])[0] == pair
    assert qa(question=["Who?", "Where?"], context=CONTEXT)[0] == pair
    assert qa(question=["Who?", "Where?"], context=[CONTEXT, CONTEXT])[0] == pair


def test_handle_impossible_answer_adds_the_empty_answer(qa):
    answers = qa(question="Who?", context=CONTEXT, top_k=100_000, handle_impossible_answer=True)
    assert {"answer": "", "start": 0, "end": 0} == {k: v for k, v in next(a for a in answers if not a["answer"]).items() if k != "score"}


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"question": "", "context": CONTEXT}, "`question` cannot be empty"),
        ({"question": "Who?", "context": ""}, "`context` cannot be empty"),
        ({"question": ["a", "b"], "context": [CONTEXT]}, "don't have the same lengths"),
        ({"question": "Who?", "context": CONTEXT, "top_k": 0}, "top_k parameter should be >= 1"),
        ({"question": "Who?", "context": CONTEXT, "max_answer_len": 0}, "max_answer_len parameter should be >= 1"),
        ({"question": "Who?", "context": CONTEXT, "doc_stride": 500}, "is larger than `max_seq_len`"),
    ],
)
def test_bad_arguments_raise_as_in_transformers4(qa, kwargs, message):
    with pytest.raises(ValueError, match=message):
        qa(**kwargs)


def test_only_question_answering_is_offered(tiny_models):
    with pytest.raises(ValueError, match="question-answering"):
        pipeline("summarization", model=tiny_models["bert-uncased"])


def test_auto_never_takes_int8_here_which_decodes_each_context_alone(tiny_models, monkeypatch):
    from corpusqa.reader import hardware

    monkeypatch.setattr(hardware, "cpu_features", lambda: hardware.CpuFeatures(avx2=True, avx512_vnni=True))
    monkeypatch.setattr(hardware, "int8_available", lambda: True)
    assert hardware.inference_precision(hardware.resolve_device("cpu")) == "int8"  # what read() would run
    assert pipeline("question-answering", model=str(tiny_models["bert-uncased"]), device="cpu").reader.precision == "float32"
