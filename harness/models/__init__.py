"""Model loading: builtin offline models (converted once into a verified cache), local folders, hub ids.

Public API: resolve_model, load_model, load_tokenizer, load_kept_model, model_slug, model_cache_dir,
ModelSpec, BUILTIN_MODELS. Nothing heavy is imported until a model is actually loaded.
"""

from harness.models.builtin import BUILTIN_MODELS, DEFAULT_MODEL, builtin_model
from harness.models.cache import BuiltinModel, cache_problem, cache_status, ensure_cached, entry_dir, model_cache_dir
from harness.models.adapters import load_kept_model
from harness.models.loading import ModelSpec, base_reference, load_model, load_tokenizer, model_slug, resolve_model

__all__ = [
    "BUILTIN_MODELS", "DEFAULT_MODEL", "BuiltinModel", "ModelSpec", "base_reference", "builtin_model", "cache_problem",
    "cache_status", "ensure_cached", "entry_dir", "load_kept_model", "load_model", "load_tokenizer", "model_cache_dir",
    "model_slug", "resolve_model",
]
