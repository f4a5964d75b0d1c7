"""`pdl-bench models`: list the builtin offline models and prepare their cache."""

HELP = "list the builtin offline models; --prepare converts one into the cache (once)"
DESCRIPTION = """\
List the builtin models that work offline (their weights ship in pip packages), with kind,
size and where the converted copy lives in the cache ($PDL_BENCH_CACHE/models, default
~/.cache/pdl-bench/models). A model is converted automatically the first time a run needs
it; --prepare does it now, verifies it, and prints how long it took. Any --model argument
also accepts a local folder saved with save_pretrained, or a hub id (org/name) when online.

examples:
  pdl-bench models
  pdl-bench models --prepare smollm2-135m
  pdl-bench models --prepare all --rebuild
"""


def add_arguments(parser):
    parser.add_argument("--prepare", nargs="+", metavar="ALIAS",
                        help="convert and verify these builtin models now ('all' for every one)")
    parser.add_argument("--rebuild", action="store_true",
                        help="with --prepare: convert again even if a verified copy is cached")


def _prepare(aliases: list[str], rebuild: bool) -> None:
    import time

    from harness.models import BUILTIN_MODELS, builtin_model, ensure_cached

    chosen = list(BUILTIN_MODELS) if "all" in aliases else [builtin_model(a).alias for a in aliases]
    for alias in chosen:
        start = time.perf_counter()
        path = ensure_cached(BUILTIN_MODELS[alias], force=rebuild)
        print(f"{alias}: ready at {path} ({time.perf_counter() - start:.1f} s)")


def _status(model) -> str:
    from harness.errors import HarnessError
    from harness.models import cache_status, entry_dir

    problem = cache_status(model)
    if problem is None:
        return str(entry_dir(model))
    try:
        model.locate_source()
    except HarnessError as err:
        return f"{problem}; needs: {err.hint}"
    return problem


def run(args) -> int:
    from harness.errors import HarnessError
    from harness.models import BUILTIN_MODELS, DEFAULT_MODEL, model_cache_dir

    if args.rebuild and not args.prepare:
        raise HarnessError("--rebuild only works with --prepare",
                           "e.g. pdl-bench models --prepare smollm2-135m --rebuild")
    if args.prepare:
        _prepare(args.prepare, args.rebuild)
        return 0
    print(f"builtin models (cache: {model_cache_dir()}; default: {DEFAULT_MODEL})")
    print(f"{'alias':18s} {'kind':8s} {'params':7s} cached")
    for alias, model in BUILTIN_MODELS.items():
        print(f"{alias:18s} {model.kind:8s} {model.params:7s} {_status(model)}")
        print(f"{'':18s} {model.description}")
    return 0
