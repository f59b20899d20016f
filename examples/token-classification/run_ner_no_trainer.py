#!/usr/bin/env python
"""Fine-tune token classification (NER, POS, chunking) with a plain PyTorch + Accelerate loop, via tagtune.

Accepts the flags of transformers' examples/pytorch/token-classification/run_ner_no_trainer.py verbatim,
plus --test_file, --mixed_precision and tagtune's windows, decoding and label options (see --help).
Unlike upstream it windows long sentences instead of truncating them, scores every input word once
(also across processes), steps the scheduler once per optimizer step, and resumes exactly, mid-epoch
included, from atomic checkpoints.

    python run_ner_no_trainer.py --model_name_or_path MODEL --train_file train.json \
        --validation_file dev.json --test_file test.json --output_dir out --checkpointing_steps 500
    accelerate launch --multi_gpu --num_processes 2 run_ner_no_trainer.py ...   # 2 GPUs, or 2 CPU processes
    python run_ner_no_trainer.py ... --resume_from_checkpoint latest

The loop is tagtune.loop.run_loop (read top to bottom) and tagtune.loop.train_steps (one optimizer step
per iteration); copy them here to change what a step does.
"""

from tagtune.cli import run_guarded
from tagtune.loop import main

if __name__ == "__main__":
    run_guarded(main)
