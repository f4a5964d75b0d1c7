"""An offline `evaluate` metric module: evaluate.load(ROUGE_MODULE_PATH) instead of evaluate.load("rouge")."""

from pathlib import Path

ROUGE_MODULE_PATH = str(Path(__file__).parent)
