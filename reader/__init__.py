"""corpusqa.reader: extract answer spans from passages with SQuAD-fine-tuned transformer models.

Faces on one core (``core.read``): the Haystack component ``ExtractiveReader`` and the seeds'
``pipeline("question-answering", model=...)``. The names below are imported on first use, so that a light
module of the package (``options``) loads without torch and Haystack.
"""

from importlib import import_module

#: Each public name and the module it lives in.
_HOMES = {
    "ExtractiveReader": "component",
    "QuestionAnsweringPipeline": "qa_pipeline",
    "ReadOptions": "options",
    "ReaderLoadError": "model",
    "ReaderModel": "model",
    "load_reader_model": "model",
    "pipeline": "qa_pipeline",
    "read": "core",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)
