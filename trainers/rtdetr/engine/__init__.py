"""The RT-DETR training engine.

Entry points (what the CLI and the sweep call):

- :func:`.trainer.launch` (cfg): re-run the command under torchrun when
  ``train.num_gpus * train.num_nodes > 1`` (returns when not needed);
- :func:`.trainer.train` (cfg, parts=None, on_epoch_end=None, log=print) -> summary dict;
- :func:`.evaluation.evaluate_checkpoint` (cfg, checkpoint=None, log=print) -> metrics dict.

One idea per module: :mod:`.optim` (parameter groups, lr schedule), :mod:`.ema`,
:mod:`.precision` (device, autocast, GradScaler), :mod:`.distributed` (torchrun,
DDP, collectives), :mod:`.run_files` (status.json, metrics.jsonl, checkpoint
names, atomic writes), :mod:`.resume` (training state, RNG), :mod:`.weights`
(pretrained weights), :mod:`.freeze`, :mod:`.reproducibility` (seed,
determinism), :mod:`.coco_eval` (COCO metrics), :mod:`.evaluation` (prediction
loop, evaluate action), :mod:`.progress` (progress bar, TensorBoard),
:mod:`.loop` (one epoch), :mod:`.trainer` (the epochs and the results folder).
"""
