"""corpusqa.indexing: files -> documents -> passages -> store (embedded by default)."""

from haystack.core.serialization import allow_deserialization_module

# Importing corpusqa is trusting it: let Pipeline YAML that names our components and stores load.
allow_deserialization_module("corpusqa")
