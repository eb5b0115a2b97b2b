"""Labels, time splits, the model, its evaluation and its promotion in the registry."""
