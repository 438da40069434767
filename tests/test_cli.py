"""`corpusqa read` and `corpusqa eval squad` from the shell's point of view."""

import json
import subprocess
import sys

import pytest

from corpusqa.pipelines.cli import main
from shared_data import SAMPLE_DIR, SQUAD_DIR, full_squad


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_read_prints_ranked_answers_marked_in_context(tiny_models, tmp_path, capsys):
    text = tmp_path / "doc.txt"
    text.write_text("The Eiffel Tower was completed in 1889 in Paris.", encoding="utf-8")
    code, out, _ = run(capsys, "read", "--model", str(tiny_models["bert-uncased"]), "-q", "When?", "--context-file", str(text))
    assert code == 0 and out.startswith("Q: When?") and "»" in out and "%" in out


def test_read_json_carries_offsets(tiny_models, capsys):
    context = "Ada Lovelace wrote the first program."
    code, out, _ = run(capsys, "read", "--model", str(tiny_models["roberta"]), "-q", "Who?", "-q", "What?", "--context", context, "--json", "--no-answer-threshold", "1e9")
    results = json.loads(out)
    assert code == 0 and len(results) == 2
    best = results[0][0]
    assert best["answer"] == context[best["start"] : best["end"]]


@pytest.mark.parametrize(
    "content,message",
    [(b"", "is empty"), (b"caf\xe9 latin-1", "is not UTF-8 text")],
)
def test_read_refuses_unreadable_context_files_by_name(tiny_models, tmp_path, capsys, content, message):
    path = tmp_path / "context.txt"
    path.write_bytes(content)
    code, _, err = run(capsys, "read", "--model", str(tiny_models["bert-uncased"]), "-q", "Who?", "--context-file", str(path))
    assert code == 2 and str(path) in err and message in err


def test_read_names_a_model_folder_that_is_not_a_qa_model(tmp_path, capsys):
    code, _, err = run(capsys, "read", "--model", str(tmp_path), "-q", "Who?", "--context", "text")
    assert code == 2 and "no config.json" in err


def test_eval_squad_scores_a_predictions_file_as_json(capsys):
    code, out, _ = run(
        capsys, "eval", "squad", "--data", str(full_squad("dev-v1.1.json")),
        "--predictions", str(SQUAD_DIR / "predictions" / "dev-v1.1.bert-ensemble.json"), "--json",
    )
    metrics = json.loads(out)
    assert code == 0 and metrics["exact"] == 86.20624408703878 and metrics["f1"] == 92.19557978351145


def test_eval_squad_v2_with_a_model_writes_official_files(tiny_models, tmp_path, capsys):
    code, out, _ = run(
        capsys, "eval", "squad", "--data", str(SAMPLE_DIR / "dev-v2.0.json"), "--model", str(tiny_models["electra"]),
        "--limit", "40", "--output", str(tmp_path), "--json",
    )
    metrics = json.loads(out)
    assert code == 0 and metrics["total"] == 40
    assert {"best_f1", "best_f1_thresh", "HasAns_exact", "NoAns_exact"} <= set(metrics)
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    na_probs = json.loads((tmp_path / "na_probs.json").read_text())
    assert len(predictions) == len(na_probs) == 40 and all(0 <= p <= 1 for p in na_probs.values())


def test_console_script_is_installed():
    done = subprocess.run([sys.executable, "-m", "corpusqa.pipelines.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "read" in done.stdout and "eval" in done.stdout
