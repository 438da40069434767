"""corpusqa.reader: extract answer spans from passages with SQuAD-fine-tuned transformer models.

Faces on one core (``core.read``): the Haystack component ``ExtractiveReader`` and the seeds'
``pipeline("question-answering", model=...)``.
"""

from haystack.core.serialization import allow_deserialization_module

from .component import ExtractiveReader
from .core import ReadOptions, read
from .model import ReaderLoadError, ReaderModel, load_reader_model
from .qa_pipeline import QuestionAnsweringPipeline, pipeline

# Importing corpusqa is trusting it: let Pipeline YAML that names our components load without extra flags.
allow_deserialization_module("corpusqa")

__all__ = [
    "ExtractiveReader",
    "QuestionAnsweringPipeline",
    "ReadOptions",
    "ReaderLoadError",
    "ReaderModel",
    "load_reader_model",
    "pipeline",
    "read",
]
