"""The Haystack face: a component that runs in a Pipeline and survives the Pipeline's YAML."""

import dataclasses
from dataclasses import replace

import pytest
from haystack import Document, Pipeline
from haystack.dataclasses import ExtractedAnswer

from corpusqa.reader import ExtractiveReader, ReadOptions

PASSAGES = [
    Document(content="The Normans gave their name to Normandy, a region in France."),
    Document(content="Rollo was the leader of the Norse raiders."),
]


def test_component_round_trips_through_pipeline_yaml_and_answers(tiny_models):
    pipeline = Pipeline()
    options = ReadOptions(top_k=3, max_answer_length=7)
    pipeline.add_component("reader", ExtractiveReader(model=str(tiny_models["electra"]), device="cpu", dtype="float32", options=options))
    text = pipeline.dumps()
    assert "corpusqa.reader.component.ExtractiveReader" in text and "max_answer_length: 7" in text

    loaded = Pipeline.loads(text)
    assert loaded.dumps() == text
    answers = loaded.run({"reader": {"query": "Who led?", "documents": PASSAGES}})["reader"]["answers"]
    spans = [a for a in answers if a.data is not None]
    assert all(isinstance(a, ExtractedAnswer) for a in answers) and len(spans) == 3
    assert all(len(a.data.split()) <= 7 for a in spans)
    direct = ExtractiveReader(model=str(tiny_models["electra"]), device="cpu", dtype="float32", options=options)
    assert [a.data for a in direct.run("Who led?", PASSAGES)["answers"]] == [a.data for a in answers]


def test_run_arguments_override_init(tiny_models):
    every_span = {"top_k": 2, "merge_overlapping": False}
    reader = ExtractiveReader(model=str(tiny_models["roberta"]), device="cpu", dtype="float32", options=every_span)
    assert len([a for a in reader.run("Who?", PASSAGES, top_k=5)["answers"] if a.data]) == 5
    abstaining = replace(reader.options, no_answer_threshold=-1e9)
    assert reader.run("Who?", PASSAGES, options=abstaining)["answers"][0].data is None
    assert reader.options.no_answer_threshold is None, "a call's options change nothing after it"


def test_to_dict_from_dict_keeps_every_setting(tiny_models):
    options = ReadOptions(doc_stride=64, no_answer_threshold=1.5)
    reader = ExtractiveReader(model=str(tiny_models["roberta"]), device="cpu", dtype="float32", options=options)
    assert reader.to_dict()["init_parameters"]["options"] == dataclasses.asdict(options), "every field, by name"
    again = ExtractiveReader.from_dict(reader.to_dict())
    assert again.to_dict() == reader.to_dict() and again.options == options


def test_options_given_in_part_keep_the_other_defaults_and_unknown_names_are_refused():
    assert ExtractiveReader(options={"top_k": 2}).options == ReadOptions(top_k=2)
    with pytest.raises(ValueError, match="no field 'topk'"):
        ExtractiveReader(options={"topk": 2})
