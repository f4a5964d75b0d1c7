"""The runner: finetune one (task, model, loss, seed) point, generate, score; pair and sweep points."""
