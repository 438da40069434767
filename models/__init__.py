"""Reader weights shipped with corpusqa, so it answers offline on a fresh machine.

One folder per model, each a standard Hugging Face model folder; nothing else lives here.
"""

from pathlib import Path

#: The name by which pipelines, YAML and the CLI ask for the shipped reader.
DEFAULT_READER = "corpusqa-minilm-squad"

#: Built-in model names and their folders.
BUILTIN_READERS = {DEFAULT_READER: Path(__file__).parent / "minilm-squad"}
