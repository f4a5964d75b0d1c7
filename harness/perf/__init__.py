"""`pdl-bench perf`: the plain Hugging Face path against the harness's fast paths, measured in
the same run on random-init models of real shapes, with a check that both compute the same thing."""
