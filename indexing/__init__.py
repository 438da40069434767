"""corpusqa.indexing."""
