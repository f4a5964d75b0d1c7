"""Run by tests/test_distributed.py under torchrun (and once alone): generation of a tiny local
task's test prompts on every process, greedy and sampled; rank 0 writes the outputs to argv[2]."""

import json
import sys
from pathlib import Path

from harness.data import load_splits, tokenize_for_generation
from harness.models import load_model
from harness.runner.dist import process_state
from harness.runner.generation import generate
from harness.task import apply_overrides, load_task

task_path, out = sys.argv[1], Path(sys.argv[2])
state = process_state()
task = apply_overrides(load_task(task_path), ["prompt.chat_template=false"])  # the random model then says more
splits = load_splits(task)
model, tokenizer, spec = load_model(task.model)
prompts = list(tokenize_for_generation(task, splits["test"], tokenizer, is_encoder_decoder=False)["input_ids"])
outputs = {}
for name, settings in (("greedy", task.generation),
                       ("sampled", task.generation.model_copy(update={"do_sample": True, "temperature": 1.5}))):
    outputs[name] = generate(model, tokenizer, prompts, settings, is_encoder_decoder=False, batch_size=3,
                             progress=False, seed=7, process_index=state.process_index,
                             num_processes=state.num_processes)
if state.is_main_process:
    out.write_text(json.dumps(outputs))
