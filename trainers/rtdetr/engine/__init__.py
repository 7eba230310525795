"""The RT-DETR training engine: optimizer, schedule, EMA, precision, DDP, run files, resume, evaluation, trainer."""
