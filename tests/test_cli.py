"""The `corpusqa` command from the shell's point of view: start-up, flags, `read`, `eval squad`, `stats`, and
progress bars."""

import argparse
import dataclasses
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from corpusqa.pipelines.cli import _parser, main
from corpusqa.pipelines.option_flags import add_flags, given
from corpusqa.reader.options import ReadOptions
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
    records = json.loads(out)
    assert code == 0 and [record["question"] for record in records] == ["Who?", "What?"]
    best = records[0]["answers"][0]
    assert best["answer"] == context[best["start"] : best["end"]]
    assert all(answer["answer"] for record in records for answer in record["answers"])
    assert all(set(record["no_answer"]) == {"score"} and record["abstained"] is False for record in records)


def test_answers_are_shown_with_white_space_collapsed_and_their_offsets_kept(tiny_models, capsys):
    context = "The tower\n    was completed\n\n   in 1889\tin Paris,\n  by Gustave   Eiffel's company."
    asked = ["read", "--model", str(tiny_models["bert-uncased"]), "-q", "When?", "--context", context,
             "--no-answer-threshold", "1e9", "--top-k", "20", "--max-answer-length", "12"]  # fmt: skip
    _, out, _ = run(capsys, *asked, "--json")
    answers = json.loads(out)[0]["answers"]
    assert any(re.search(r"\s\s|\n", a["answer"]) for a in answers), "some answer spans a line break"
    assert all(a["answer"] == context[a["start"] : a["end"]] for a in answers), "the JSON keeps the passage's text"
    _, text, _ = run(capsys, *asked)
    shown = [line.split("%  ", 1)[1] for line in text.splitlines() if re.match(r"\s+\d+\.\s+[\d.]+%  ", line)]
    assert shown == [" ".join(a["answer"].split()) for a in answers]
    assert len(text.splitlines()) == 1 + 2 * len(answers) + 1, "the question, two lines an answer, the no-answer"


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


# -- start-up --------------------------------------------------------------------------------------------

HEAVY = ("torch", "transformers", "haystack", "sentence_transformers", "streamlit", "fastapi", "uvicorn")
COMMANDS = [[], ["index"], ["ask"], ["stats"], ["ui"], ["serve"], ["read"], ["eval"], ["eval", "squad"],
            ["eval", "open"], ["train"], ["average"]]  # fmt: skip


def test_help_of_every_command_loads_no_heavy_library():
    script = f"""
import json, sys
from corpusqa.pipelines.cli import main
for command in {COMMANDS!r}:
    try:
        main([*command, "--help"])
    except SystemExit as done:
        assert done.code == 0, command
print(json.dumps(sorted(name for name in {HEAVY!r} if name in sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


# -- reader options as flags ----------------------------------------------------------------------------


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by its name ("eval squad" for a nested one)."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {inner}": p for inner, p in _subparsers(sub).items()})
    return found


@pytest.mark.parametrize("command", ["read", "eval squad", "ask", "ui", "serve"])
def test_every_reader_option_is_a_flag_explained_by_its_field(command):
    flags = {option: action for action in _subparsers(_parser())[command]._actions for option in action.option_strings}
    for option in dataclasses.fields(ReadOptions):
        action = flags["--" + option.name.replace("_", "-")]
        assert action.help.startswith(option.metadata["help"].replace("%", "%%")), option.name
        assert action.default is None, "not given unless the user gives it"


def test_flags_follow_the_fields_of_an_options_dataclass_whatever_they_are():
    @dataclass(frozen=True)
    class Options:
        count: int = field(default=3, metadata={"help": "how many"})
        ratio: float | None = None
        name: str = "x"
        folder: Path | None = None
        strict: bool = True

    parser = argparse.ArgumentParser()
    add_flags(parser, Options, Options())
    args = parser.parse_args(["--count", "5", "--ratio", "0.5", "--folder", "/tmp", "--no-strict"])
    assert given(args, Options) == {"count": 5, "ratio": 0.5, "folder": Path("/tmp"), "strict": False}
    assert dataclasses.replace(Options(), **given(args, Options)) == Options(5, 0.5, "x", Path("/tmp"), False)
    assert given(parser.parse_args([]), Options) == {}
    assert "how many (default: 3)" in parser.format_help()


def test_a_field_no_flag_can_read_is_named():
    @dataclass
    class Options:
        shape: tuple[int, int] = (1, 1)

    with pytest.raises(TypeError, match="Options.shape"):
        add_flags(argparse.ArgumentParser(), Options)


def test_read_passes_every_option_given_to_the_reader(tiny_models, capsys, monkeypatch):
    seen = []
    monkeypatch.setattr("corpusqa.reader.read", lambda reader, questions, passages, options: seen.append(options) or [[]])
    run(capsys, "read", "--model", str(tiny_models["electra"]), "-q", "Who?", "--context", "Ada.", "--doc-stride", "32",
        "--no-merge-overlapping", "--context-chars", "40")  # fmt: skip
    assert seen == [ReadOptions(doc_stride=32, merge_overlapping=False, context_chars=40)]


# -- stats ----------------------------------------------------------------------------------------------


def test_stats_read_as_counts_local_dates_and_sizes(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    for number in range(3):
        (docs / f"note-{number}.txt").write_text(f"Note {number}: the meeting moved to room {number}.", encoding="utf-8")
    store = tmp_path / "store"
    assert main(["index", str(docs), "--store", str(store), "--no-embed", "--quiet"]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "stats", "--store", str(store))
    assert code == 0
    assert "Passages:       3 from 3 files (3 documents)" in out and "  txt           3 files, 3 passages" in out
    assert re.search(r"Last indexed:   \d{4}-\d\d-\d\d \d\d:\d\d\n", out)
    assert re.search(r"On disk:        [\d.]+ (KB|MB) \(sqlite [\d.]+ (KB|MB), bm25 ", out)
    assert "Dense index:    none (indexed without embeddings: BM25 only)" in out
    assert "{" not in out and not re.search(r"\d{9}", out), "no dict reprs, no raw epochs"
    _, raw, _ = run(capsys, "stats", "--store", str(store), "--json")
    assert json.loads(raw)["passages"] == 3


def test_index_reread_indexes_unchanged_files_again(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    for number in range(2):
        (docs / f"note-{number}.txt").write_text(f"Note {number}: the meeting moved to room {number}.", encoding="utf-8")
    index = ["index", str(docs), "--store", str(tmp_path / "store"), "--no-embed", "--quiet"]
    assert main(index) == 0 and main(index) == 0
    assert "Indexed 0 files (0 passages), skipped 2 unchanged" in capsys.readouterr().out
    assert main([*index, "--reread"]) == 0
    assert "Indexed 2 files (2 passages), skipped 0 unchanged" in capsys.readouterr().out


# -- progress ---------------------------------------------------------------------------------------------


def on_a_terminal(*argv: str) -> str:
    """What `corpusqa ARGV` writes to stderr when stderr is a terminal (a pseudo-terminal, 120 columns wide)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    with subprocess.Popen([sys.executable, "-m", "corpusqa.pipelines.cli", *argv], stdout=subprocess.DEVNULL,
                          stderr=follower) as process:  # fmt: skip
        os.close(follower)
        written = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closes when the process ends
                break
            if not chunk:
                break
            written += chunk
    os.close(leader)
    assert process.returncode == 0, written
    return written.decode("utf-8", "replace")


def test_an_index_run_shows_files_passages_converted_and_embedded_with_rates_on_a_terminal(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for number in range(3):
        (docs / f"note-{number}.txt").write_text(f"Note {number}: the meeting moved to room {number}.", encoding="utf-8")
    shown = on_a_terminal("index", str(docs), "--store", str(tmp_path / "store"))
    assert re.search(r"files: 100%\S* 3/3 \[[\d:]+<[\d:]+, [^\]]+ files(/s)?\]", shown), "a rate and an ETA"
    assert re.search(r"converted: 3 passages \[[\d:]+, [^\]]+ passages(/s)?\]", shown), "a count and a rate"
    assert re.search(r"embedded: 100%\S* 3/3 \[[\d:]+<[\d:]+, [^\]]+ passages(/s)?\]", shown)
    assert on_a_terminal("index", str(docs), "--store", str(tmp_path / "quiet"), "--no-embed", "--quiet") == ""


def test_an_index_run_prints_no_bars_where_stderr_is_not_a_terminal(tmp_path):
    (tmp_path / "a.txt").write_text("A short note.", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "corpusqa.pipelines.cli", "index", str(tmp_path / "a.txt"),
                           "--store", str(tmp_path / "store"), "--no-embed"], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0 and done.stderr == "" and done.stdout.startswith("Indexed 1 files")


def test_eval_shows_questions_evaluated_on_a_terminal_unless_quiet(tiny_models):
    asked = ["eval", "squad", "--data", str(SAMPLE_DIR / "dev-v1.1.json"), "--model", str(tiny_models["electra"]),
             "--limit", "20"]  # fmt: skip
    assert re.search(r"evaluating: 100%\S* 20/20 \[[\d:]+<[\d:]+, ", on_a_terminal(*asked))
    assert on_a_terminal(*asked, "--quiet") == ""


# -- average ---------------------------------------------------------------------------------------------


def _two_readers(tmp_path):
    from tiny_models import build_tiny_model

    return [build_tiny_model("bert-uncased", tmp_path / name, seed=seed) for name, seed in (("a", 1), ("b", 2))]


def test_average_writes_the_mean_of_the_readers_and_in_fp16_with_half(tmp_path, capsys):
    from safetensors.torch import load_file

    a, b = _two_readers(tmp_path)
    assert main(["average", str(a), str(b), "--output", str(tmp_path / "mean")]) == 0
    assert "mean of 2 readers" in capsys.readouterr().out
    first, second, mean = (load_file(f / "model.safetensors")["qa_outputs.weight"] for f in (a, b, tmp_path / "mean"))
    assert torch.allclose(mean, (first + second) / 2, atol=1e-7)
    assert main(["average", str(a), str(b), "--output", str(tmp_path / "half"), "--half"]) == 0
    assert load_file(tmp_path / "half" / "model.safetensors")["qa_outputs.weight"].dtype == torch.float16


def test_average_with_held_out_questions_prints_the_greedy_soups_table(tmp_path, capsys):
    a, b = _two_readers(tmp_path)
    held_out = SAMPLE_DIR / "dev-v1.1.json"
    code = main(["average", str(a), str(b), "--output", str(tmp_path / "soup"), "--held-out", str(held_out),
                 "--device", "cpu", "--dtype", "float32"])
    out = capsys.readouterr().out
    assert code == 0 and (tmp_path / "soup" / "model.safetensors").is_file()
    rows = [line for line in out.splitlines() if line.startswith(f"| {tmp_path}")]
    assert len(rows) == 2 and rows[0].endswith("| yes |")  # the better reader alone always stays
    assert f"readers to {tmp_path / 'soup'} (F1 on {held_out})" in out


def test_average_names_the_problem_with_one_reader(tmp_path, capsys):
    a, _ = _two_readers(tmp_path)
    assert main(["average", str(a), "--output", str(tmp_path / "mean")]) == 2
    assert "two or more readers" in capsys.readouterr().err
