"""Experiments beside the library, built on its public API.

* :mod:`fastmlp.experiments.suite` -- the benchmark suite (``fastmlp bench``):
  fastmlp against Keras, PyTorch and scikit-learn on MNIST, each training the
  blog experiment's 784-70-30-10 network, side by side in one run;
* :mod:`fastmlp.experiments.study` -- the blog series' regularisation study
  (``fastmlp study``): a sweep over lambda2, beside the blog's own figures;
* :mod:`fastmlp.experiments.keras_models` -- the Keras reference models: the
  blog series' MLP and CNN, the equal-terms Keras model of the benchmark and
  the Keras twin the tests check fastmlp's maths against.

"The blog series" is the source of the project: "MLP, Numpy, TF2 --
performance issues" (Steps I-III) and "A simple CNN for the MNIST datasets".
"The blog experiment" is its MNIST run: a 784-70-30-10 sigmoid MLP, LogLoss,
learning rate 0.001, batch 500, 35 epochs -- :class:`fastmlp.MLPClassifier`'s
defaults.  Importing this package imports none of the optional libraries
(TensorFlow, PyTorch, matplotlib); the functions that need one do.
"""
