"""pdl-bench: does Power-Law Decay Loss make finetuned LMs write more specific, diverse text?"""

__version__ = "0.1.0"
