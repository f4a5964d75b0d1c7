"""The label convention shared by data, losses, frequencies and packing."""

IGNORE_INDEX = -100  # Hugging Face's label for positions that carry no loss (prompt, padding)
