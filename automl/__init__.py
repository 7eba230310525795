"""tao-automl: hyperparameter sweeps for RT-DETR driven by TAO skill schemas."""
