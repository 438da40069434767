"""The search page's settings: defaults read from the loaded pipeline (so from its YAML, as `corpusqa ask`
has them), and the store filter built from the sidebar's choices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from corpusqa.pipelines.query import QueryPipeline
from corpusqa.reader.options import ReadOptions
from corpusqa.ui.corpus import folder_prefix


@dataclass(frozen=True)
class SearchDefaults:
    passages: int
    #: The reader's options the page starts from; the sidebar changes their top_k and no-answer threshold.
    options: ReadOptions
    no_answer_threshold: float
    #: Where the threshold comes from, said next to the control.
    threshold_source: str


def search_defaults(pipeline: QueryPipeline, overrides: Mapping[str, Any] | None = None) -> SearchDefaults:
    """Passages read: the top_k of the component feeding the reader; the reader's options: the pipeline's
    with ``overrides`` (`corpusqa ui --top-k 3 ...`); the no-answer threshold: the overrides', else the
    reader's (from the YAML), else the one ``read`` would use (``reader.core.threshold_source``)."""
    reader = pipeline.reader
    passages = pipeline.retrieval.get_component(pipeline.feeder).top_k
    options = replace(reader.options, **(overrides or {}))
    if overrides and overrides.get("no_answer_threshold") is not None:
        threshold, source = options.no_answer_threshold, "set when the UI was started"
    else:
        from corpusqa.reader.core import threshold_source  # the reader's core loads torch: only when asked

        threshold, source = threshold_source(reader.loaded, options)
        source = "the pipeline's" if source == "set in the options" else source
    return SearchDefaults(passages, options, threshold, source)


def passage_filters(file_types: Sequence[str] = (), folder: str | None = None) -> dict[str, Any] | None:
    """The store filter for the chosen file types (any of them) in the chosen folder (with its subfolders)."""
    conditions = []
    if file_types:
        conditions.append({"field": "meta.file_type", "operator": "in", "value": list(file_types)})
    if folder:
        conditions.append({"field": "meta.file_path", "operator": "prefix", "value": folder_prefix(folder)})
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else {"operator": "AND", "conditions": conditions}
