"""The estimators' documentation of their parameters and attributes, in one place.

Each entry is the numpydoc text of one parameter or attribute.  The
estimators' docstrings are put together from these, in the order of their
parameter tables (:func:`parameters_section`), so the classifier and the
regressor say the same thing about what they share.
"""

__all__ = ["PARAMETERS", "ATTRIBUTES", "parameters_section", "attributes_section"]

#: name -> numpydoc entry (its first line is "name : type, default ...").
PARAMETERS = {
    "hidden_layer_sizes": """\
hidden_layer_sizes : tuple of int, default (100,)
    Nodes per hidden layer; input and output sizes come from the data.
    Blog: ``ay_nodes_layers = [0, 70, 30, 0]``; scikit-learn: the same
    name and default.""",
    "activation": """\
activation : {"sigmoid", "tanh", "relu"}, default "relu"
    Activation of the hidden layers.  Each derivative is taken from the
    layer's output A: A (1 - A), 1 - A^2, [A > 0].  Scikit-learn: the
    same name ("logistic" is its "sigmoid").""",
    "output": """\
output : {"auto", "sigmoid", "softmax"}, default "auto"
    Output layer and loss: sigmoid + LogLoss (the blog's; every output a
    probability of its own) or softmax + categorical cross-entropy
    (max-shifted, no log(0)).  "auto": softmax for one label per sample,
    sigmoid for multilabel targets (which need it).  Blog:
    ``my_out_function`` / ``my_loss_function``; scikit-learn chooses as
    "auto" does (``out_activation_``).""",
    "epochs": """\
epochs : int, default 200
    The most epochs a fit trains: the no-improvement rule
    (``n_iter_no_change``), early stopping or the callback may stop it
    first.  Blog: ``n_epochs``; scikit-learn: ``max_iter``.""",
    "batch_size": """\
batch_size : int or "auto", default "auto"
    Samples per mini-batch; the last batch of an epoch holds the
    remainder.  "auto": min(200, n_samples).  A batch size above the
    number of samples means one batch of all samples.  Blog:
    ``n_size_mini_batch``; scikit-learn: the same name and default.""",
    "learning_rate": """\
learning_rate : float, default 0.001
    The step's rate.  The loss is summed over the batch (the blog's
    LogLoss), so with sgd the step grows with the batch size; adam and
    rmsprop hardly depend on it.  Blog: ``learn_rate``; scikit-learn:
    ``learning_rate_init``.""",
    "lr_decay": """\
lr_decay : float, default 0.0
    At the start of epoch e the rate is divided by ``1 + lr_decay * e``
    (``schedule="decay"`` only).  Blog: ``decrease_const``.""",
    "schedule": """\
schedule : {"decay", "adaptive"}, default "decay"
    How the rate changes from epoch to epoch.  "decay": the blog's
    division above.  "adaptive" (scikit-learn's ``learning_rate=
    "adaptive"``): the rate stays at ``learning_rate`` while the watched
    figure improves (validation score with ``early_stopping``, else the
    training loss); each time it has not improved by ``tol`` for more
    than ``n_iter_no_change`` epochs in a row, the rate is divided by 5
    and the count starts again, and once the rate is at or below 1e-6
    such a plateau stops training.  ``lr_decay`` is not used.  The rate
    carries over to partial_fit, warm-started fits and the model file.""",
    "samples_per_epoch": """\
samples_per_epoch : int or None, default None
    What counts as an epoch for the learning-rate schedule and the
    no-improvement rule.  None: each epoch of ``fit``, and each
    ``partial_fit`` call (one pass over its block).  A number n: they
    count training samples, one epoch per n (e.g. the size of the data
    set that ``partial_fit`` streams in blocks): the decay's epoch is
    ``t_ // n``, and the rule sees one figure per n samples, the
    training loss pooled over the blocks, whatever their sizes.
    ``n_iter_`` still counts passes.  (scikit-learn's "invscaling" also
    decays by samples seen.)""",
    "momentum": """\
momentum : float, default 0.0
    ``W -= lr G + momentum dW_prev``, with ``dW_prev`` the last step's
    ``lr G``: the blog's rule, not scikit-learn's velocity.  Blog:
    ``mom_rate``.  Used by the "sgd" optimizer only.""",
    "optimizer": """\
optimizer : {"sgd", "rmsprop", "adam"}, default "adam"
    "sgd": the blog's momentum rule above.  "rmsprop" and "adam": the
    rules of Keras's ``RMSprop`` and ``Adam`` (see ``rho``, ``beta_1``,
    ``beta_2``, ``epsilon``), applied to the regularised gradient of the
    summed batch cost, with ``learning_rate`` and its decay as the rate.
    Keras's defaults for both are learning_rate 0.001 and no decay.
    Scikit-learn: ``solver`` ("adam" and "sgd"; it has no rmsprop).""",
    "rho": """\
rho : float, default 0.9
    rmsprop: decay of the running mean of squared gradients.""",
    "beta_1, beta_2": """\
beta_1, beta_2 : float, default 0.9, 0.999
    adam: decays of the first and second moment estimates.""",
    "epsilon": """\
epsilon : float, default 1e-7
    rmsprop and adam: the small constant of the denominator (Keras's
    placement: inside the square root for rmsprop, outside for adam).""",
    "l2": """\
l2 : float, default 1e-4
    L2 factor; adds ``l2/2 sum W^2`` to each batch cost.  As the data loss
    is summed over the batch, this equals scikit-learn's ``alpha`` (whose
    loss is averaged and whose penalty is divided by the batch size).
    Blog: ``lambda2_reg``.""",
    "l1": """\
l1 : float, default 0.0
    L1 factor; adds ``l1 sum |W|`` to each batch cost.  Blog:
    ``lambda1_reg``.""",
    "init": """\
init : {"glorot", "blog"}, default "glorot"
    How the initial weights (biases too) are drawn, uniformly: "glorot"
    within ``+-sqrt(6 / (n_in + n_out))`` (2 instead of 6 for sigmoid
    hidden layers), scikit-learn's rule; "blog" within
    ``+-0.5 sqrt(1/n_in) init_factor``, the blog's.  (Measured: on
    make_friedman1 the blog rule's small output layer left the regressor at
    R^2 0.950 after 200 epochs, Glorot's reached 0.981.)""",
    "init_factor": """\
init_factor : float, default 2.0
    With ``init="blog"``, initial weights are uniform in
    ``+-0.5 sqrt(1/n_in) init_factor``.
    Blog: ``init_weight_fact`` with ``init_weight_meth = "sqrt_nodes"``.""",
    "shuffle": """\
shuffle : bool, default True
    Draw a new permutation of the samples every epoch.  Blog:
    ``b_shuffle_batches``.""",
    "scaling": """\
scaling : {"auto", "standard", "minmax", "maxabs", "none"}, default "auto"
    How inputs are scaled, with statistics of the training data only:
    "standard" subtracts the mean and divides by the standard deviation
    of each feature (the statistics of scikit-learn's ``StandardScaler``,
    the blog's choice);
    "minmax" maps each feature's training range to [0, 1] (for MNIST
    pixels this is x/255 for every pixel that reaches 255); "maxabs"
    divides each feature by its largest absolute value (scikit-learn's
    ``MaxAbsScaler``: zeros stay zeros); "none" leaves the inputs as they
    are; "auto" is "standard" for dense X and "maxabs" for a sparse matrix.
    A sparse X is never scaled or centred: the first layer folds the
    scaling into its weights, which is exact in real arithmetic.  Blog:
    ``scaler1``/``scaler2``.""",
    "input_format": """\
input_format : {"auto", "dense", "sparse"}, default "auto"
    How X is trained on.  A scipy.sparse X always takes the sparse path
    (a canonical CSR copy in narrow types, never densified; "dense" is
    refused).  A dense X takes the sparse path with "sparse", and with
    "auto" when it is trained on (fit, partial_fit, validation data) and
    at most 20 % of it is nonzero, with 64 columns or more: raw MNIST (19 %
    nonzero) trains 1.4x faster that way.  The threshold was measured
    (``fastmlp._sparse.AUTO_SPARSE_DENSITY``); otherwise, and in predict,
    the dense path.  Both compute the same model up to float32 rounding;
    "dense" reproduces the dense path's numbers bit for bit.""",
    "train_accuracy": """\
train_accuracy : {"batch", "full", "none"}, default "batch"
    "batch": average the accuracy of each batch's own forward outputs
    during the epoch (cheap).  "full": predict the whole training set
    every ``eval_period`` epochs.  Blog: ``b_predictions_train``.""",
    "eval_period": """\
eval_period : int, default 1
    Epochs between full-set score measurements: the training set when
    ``train_accuracy="full"``, and ``history_.test_acc`` on the validation
    data (``val_score`` and ``val_loss`` are recorded every epoch).
    Blog: ``prediction_train_period`` / ``prediction_test_period``.""",
    "early_stopping": """\
early_stopping : bool, default False
    Hold out ``validation_fraction`` of the training data (stratified by
    class, split with ``random_state``, by scikit-learn's
    ``train_test_split``), train on the rest, score the held-out part
    after every epoch, and stop when the score has not improved by at
    least ``tol`` for more than ``n_iter_no_change`` epochs in a row.
    Given ``validation_data`` replaces the held-out part.  At the end of
    the fit, however it ends (except by divergence or Ctrl-C), the model
    is put back to the epoch with the best validation score: its
    weights, optimiser state and step count, learning rate and adaptive
    schedule; ``n_iter_``, ``t_`` and ``history_`` keep counting every
    epoch trained, as scikit-learn's do.  Input scaling comes from the
    training part.  partial_fit refuses it.  Scikit-learn: the same name.""",
    "validation_fraction": """\
validation_fraction : float in (0, 1), default 0.1
    Share of the training data held out by ``early_stopping``.  It must
    leave every class at least one sample on both sides.  Scikit-learn:
    the same name.""",
    "n_iter_no_change": """\
n_iter_no_change : int >= 1 or None, default 10
    The no-improvement rule's patience, as scikit-learn counts it: when
    the watched figure (validation score with ``early_stopping``, else
    the training loss ``history_.train_loss``) has not improved by at
    least ``tol`` for more than this many epochs in a row, the fit stops
    (``history_.stopped``), or the "adaptive" schedule lowers the rate.
    None (or ``float("inf")``) never stops early: every epoch runs.
    Scikit-learn: the same name.""",
    "tol": """\
tol : float >= 0, default 1e-4
    The improvement that counts for ``n_iter_no_change``, in the watched
    figure's units (per-sample loss, or score).  Scikit-learn: the same
    name.""",
    "warm_start": """\
warm_start : bool, default False
    ``fit`` on a fitted model trains ``epochs`` more epochs from its
    weights, optimiser state, learning-rate schedule, input scaling and
    random stream, appending to ``history_`` (like ``epochs`` calls of
    partial_fit, but with early stopping and the no-improvement rule
    counted afresh for the fit).  The data must have the same features
    and classes.  Scikit-learn: the same name (whose optimiser starts
    afresh).""",
    "class_weight": """\
class_weight : dict, "balanced" or None, default None
    Weights of the classes in the loss: each sample's loss term is
    multiplied by its class's weight (and by its ``sample_weight``).  A
    dict maps class labels to weights (missing classes weigh 1);
    "balanced" gives ``n_samples / (n_classes * count(class))``, as
    scikit-learn computes it.  Not for multilabel targets.  Scikit-learn's
    ``class_weight`` meaning (its MLPClassifier has none).""",
    "backend": """\
backend : {"compiled", "numpy"}, default "compiled"
    Which kernels run the training step: the Cython/C kernels or the NumPy
    reference.  Both compute the same numbers.""",
    "n_threads": """\
n_threads : int or None, default None
    Threads used during fit and predict.  The compiled backend splits each
    batch into one row slice per thread (OpenMP) and keeps BLAS at one
    thread; the NumPy backend gives them to BLAS.  None: all cores for the
    compiled backend, BLAS's default for NumPy.  A fit is deterministic
    for a given ``random_state`` and ``n_threads``.""",
    "divergence": """\
divergence : {"raise", "warn"}, default "raise"
    What happens when training diverges, i.e. a batch cost or an updated
    weight becomes NaN or infinite (checked every batch, inside the
    update pass): the model goes back to the weights and optimiser state
    after the last finite step, records where it stopped in
    ``history_.stopped``, and either raises :class:`DivergenceError`
    ("raise") or warns with a RuntimeWarning and returns ("warn").""",
    "random_state": """\
random_state : int, numpy Generator or None, default None
    The random generator's seed for the weight initialisation and the
    permutations: the same value gives the same run.""",
    "verbose": """\
verbose : int, default 0
    1 prints one line per epoch.""",
}

#: name -> numpydoc entry of a fitted attribute.
ATTRIBUTES = {
    "coefs_": """\
coefs_ : list of ndarray
    Weight matrices ``(n_out, 1 + n_in)`` float32, bias in column 0.""",
    "classes_": """\
classes_ : ndarray
    The class labels, in the order of the output nodes (multilabel: the
    label columns 0 .. K-1).""",
    "layers_": """\
layers_ : tuple of int
    Nodes per layer, input to output, e.g. (784, 70, 30, 10).""",
    "n_layers_": """\
n_layers_ : int
    ``len(layers_)``, input and output layers included (scikit-learn's
    count).""",
    "n_outputs_": """\
n_outputs_ : int
    Output nodes: one per class or label (a regressor: one per target).""",
    "out_activation_": """\
out_activation_ : str
    The output layer's function: ``output``, or what "auto" chose for the
    targets ("sigmoid", which scikit-learn calls "logistic", "softmax" or
    "identity").""",
    "n_features_in_": """\
n_features_in_ : int
    Features seen in fit.""",
    "feature_names_in_": """\
feature_names_in_ : ndarray of str
    Column names of a data frame X seen in fit, when they are all
    strings; only then set.  Data frames given later must have the same
    columns (ValueError naming the differences); a plain array is
    accepted with a UserWarning, as in scikit-learn.""",
    "mean_, scale_": """\
mean_, scale_ : ndarray
    Standardisation statistics of the training data (float32).""",
    "history_": """\
history_ : History
    Per-batch and per-epoch record of the training.""",
    "n_iter_": """\
n_iter_ : int
    Epochs trained so far, over the model's life (also those after the
    best epoch that early stopping put back).""",
    "t_": """\
t_ : int
    Training samples the weight updates have used so far.""",
    "loss_curve_": """\
loss_curve_ : list of float
    ``history_.cost``: the mean batch cost of every epoch (the blog's
    figure; ``history_.train_loss`` is the per-sample loss).""",
    "best_loss_": """\
best_loss_ : float or None
    Lowest ``history_.train_loss`` the no-improvement rule saw; None
    with early stopping (see ``best_validation_score_``).""",
    "validation_scores_": """\
validation_scores_ : list of float or None
    With early stopping, the validation score of every epoch of the
    last fit; else None.""",
    "best_validation_score_": """\
best_validation_score_ : float or None
    With early stopping, the best of ``validation_scores_``: that of
    the epoch the model was put back to; else None.""",
    "optimizer_steps_": """\
optimizer_steps_ : int
    Weight updates (batches) behind the current weights; adam's bias
    correction counts them.  After early stopping, those up to the best
    epoch.""",
    "learning_rate_": """\
learning_rate_ : float
    Rate used in the last epoch (after early stopping: in the best
    epoch).""",
}



def _indent(text):
    return "\n".join(("    " + line) if line else "" for line in text.splitlines())


def _section(title, entries, names, overrides):
    overrides = overrides or {}
    keys = []                     # an entry may document several names ("a, b")
    for n in names:
        key = n if n in overrides or n in entries else \
            next(k for k in entries if n in k.split(", "))
        if key not in keys:
            keys.append(key)
    body = "\n".join(_indent(overrides.get(k) or entries[k]) for k in keys)
    return f"\n    {title}\n    {'-' * len(title)}\n{body}\n"


def parameters_section(names, overrides=None):
    """The numpydoc "Parameters" section for ``names`` (in order), each entry
    from ``overrides`` when it has one, else from :data:`PARAMETERS`."""
    return _section("Parameters", PARAMETERS, names, overrides)


def attributes_section(names, overrides=None):
    """The numpydoc "Attributes" section for ``names`` (see :func:`parameters_section`)."""
    return _section("Attributes", ATTRIBUTES, names, overrides)
