"""corpusqa.pipelines."""
