"""fastmlp against Keras, PyTorch and scikit-learn on MNIST (see
fastmlp/experiments/suite.py; also ``fastmlp bench``).

The suite lives in the package so that ``fastmlp bench`` runs it too; this
script is the same command from a checkout:

    python bench/suite.py --epochs 35 --repeats 3 --json out.json --plot out.png
"""

import sys

from fastmlp.experiments.suite import main

if __name__ == "__main__":
    sys.exit(main())
