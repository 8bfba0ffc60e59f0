"""Experiments beside the library: the benchmark suite, the regularisation study
and the Keras reference models."""
