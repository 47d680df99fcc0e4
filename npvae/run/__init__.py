"""The running machinery: data, the training loop, checkpoints and runs, plots, the command
line, the scikit-learn-style estimator."""
