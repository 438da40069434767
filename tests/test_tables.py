"""Pipe tables are read row by row: each row becomes one line that names its cells, and nothing else moves."""

from __future__ import annotations

from corpusqa.indexing.tables import name_table_cells, named_row

PRESETS = (
    "The following table summarises the presets:\n"
    "| Preset | DictSize | CompMem |\n"
    "|---|:---:|---:|\n"
    "| -6 | 8 MiB | 94 MiB |\n"
    "| -9 | 64 MiB | 674 MiB |\n"
    "Column descriptions follow."
)


def test_each_row_becomes_a_line_naming_its_cells_and_the_header_row_goes():
    assert name_table_cells(PRESETS) == (
        "The following table summarises the presets:\n"
        "Preset: -6; DictSize: 8 MiB; CompMem: 94 MiB.\n"
        "Preset: -9; DictSize: 64 MiB; CompMem: 674 MiB.\n"
        "Column descriptions follow."
    )


def test_text_without_tables_is_kept_character_for_character():
    text = "Line one.\r\n\r\n  indented | with a pipe\n\f| not closed\nlast line without newline"
    assert name_table_cells(text) == text


def test_windows_line_endings_survive_around_and_inside_a_table():
    text = "Before.\r\n| A | B |\r\n|---|---|\r\n| 1 | 2 |\r\nAfter.\r\n"
    assert name_table_cells(text) == "Before.\r\nA: 1; B: 2.\r\nAfter.\r\n"


def test_an_escaped_pipe_stays_inside_its_cell():
    text = "| Char | Name |\n|---|---|\n| \\| | vertical bar |"
    assert name_table_cells(text) == "Char: |; Name: vertical bar."


def test_empty_cells_are_left_out_and_unnamed_cells_stand_alone():
    text = "| Signal |  | Action |\n|---|---|---|\n| SIGCHLD | P1990 |  | extra |\n|  |  |  |"
    assert name_table_cells(text) == "Signal: SIGCHLD; P1990; extra."


def test_a_row_that_ends_a_sentence_gets_no_second_full_stop():
    text = "| Option | Meaning |\n|---|---|\n| -v | Print more. |"
    assert name_table_cells(text) == "Option: -v; Meaning: Print more."


def test_pipe_lines_without_a_separator_row_under_the_first_are_not_a_table():
    art = "| box | drawn |\n| in  | text  |\n| a   | b     |"
    assert name_table_cells(art) == art
    assert name_table_cells("|---|---|\n| a | b |") == "|---|---|\n| a | b |"


def test_two_tables_in_one_text_are_each_named_by_their_own_header():
    text = "| A | B |\n|---|---|\n| 1 | 2 |\n\n| C | D |\n|---|---|\n| 3 | 4 |"
    assert name_table_cells(text) == "A: 1; B: 2.\n\nC: 3; D: 4."


def test_outer_pipes_are_optional_as_in_github_markdown():
    text = "Presets:\nPreset | DictSize\n--- | :-:\n-6 | 8 MiB\n| -9 | 64 MiB\n\nAfter."
    assert name_table_cells(text) == "Presets:\nPreset: -6; DictSize: 8 MiB.\nPreset: -9; DictSize: 64 MiB.\n\nAfter."


def test_a_table_ends_at_the_first_line_without_a_cell_boundary():
    text = "A | B\n-|-\n1 | 2\nThe next paragraph, not a row.\n3 | 4"
    assert name_table_cells(text) == "A: 1; B: 2.\nThe next paragraph, not a row.\n3 | 4"


def test_a_separator_row_of_another_width_does_not_make_a_table():
    text = "cat notes | grep -c todo | sort\n--- | ---\nls | wc"
    assert name_table_cells(text) == text


def test_a_named_row_says_where_each_value_lies_by_column_even_when_names_repeat():
    row = named_row(["Size", "Size", "Note"], ["8 MiB", "", "9 MiB", "extra"])
    assert row.line == "Size: 8 MiB; Note: 9 MiB; extra."
    assert [(column, row.line[a:b]) for column, a, b in row.cells] == [(0, "8 MiB"), (2, "9 MiB"), (3, "extra")]
    twice = named_row(["Size", "Size"], ["8 MiB", "16 MiB"])
    assert [twice.line[a:b] for _, a, b in twice.cells] == ["8 MiB", "16 MiB"]
