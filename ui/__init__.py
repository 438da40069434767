"""corpusqa.ui."""
