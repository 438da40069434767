"""The read-only SQuAD data beside the checkout (../shared/squad), as CI has it; tests may read it, the product never."""

from pathlib import Path

SQUAD_DIR = Path(__file__).resolve().parents[2] / "shared" / "squad"
