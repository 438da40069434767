"""The Haystack face: a component that runs in a Pipeline and survives the Pipeline's YAML."""

from haystack import Document, Pipeline
from haystack.dataclasses import ExtractedAnswer

from corpusqa.reader import ExtractiveReader

PASSAGES = [
    Document(content="The Normans gave their name to Normandy, a region in France."),
    Document(content="Rollo was the leader of the Norse raiders."),
]


def test_component_round_trips_through_pipeline_yaml_and_answers(tiny_models):
    pipeline = Pipeline()
    pipeline.add_component("reader", ExtractiveReader(model=str(tiny_models["electra"]), device="cpu", dtype="float32", top_k=3, max_answer_length=7))
    text = pipeline.dumps()
    assert "corpusqa.reader.component.ExtractiveReader" in text and "max_answer_length: 7" in text

    loaded = Pipeline.loads(text)
    assert loaded.dumps() == text
    answers = loaded.run({"reader": {"query": "Who led?", "documents": PASSAGES}})["reader"]["answers"]
    spans = [a for a in answers if a.data is not None]
    assert all(isinstance(a, ExtractedAnswer) for a in answers) and len(spans) == 3
    assert all(len(a.data.split()) <= 7 for a in spans)
    direct = ExtractiveReader(model=str(tiny_models["electra"]), device="cpu", dtype="float32", top_k=3, max_answer_length=7)
    assert [a.data for a in direct.run("Who led?", PASSAGES)["answers"]] == [a.data for a in answers]


def test_run_arguments_override_init(tiny_models):
    reader = ExtractiveReader(model=str(tiny_models["roberta"]), device="cpu", dtype="float32", top_k=2)
    assert len([a for a in reader.run("Who?", PASSAGES, top_k=5)["answers"] if a.data]) == 5
    assert reader.run("Who?", PASSAGES, no_answer_threshold=-1e9)["answers"][0].data is None


def test_to_dict_from_dict_keeps_every_setting(tiny_models):
    reader = ExtractiveReader(model=str(tiny_models["roberta"]), device="cpu", dtype="float32", doc_stride=64, no_answer_threshold=1.5)
    again = ExtractiveReader.from_dict(reader.to_dict())
    assert again.to_dict() == reader.to_dict() and again.options == reader.options
