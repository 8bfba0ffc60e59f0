"""The blog series' regularisation study (see fastmlp/experiments/study.py;
also ``fastmlp study``).

    python bench/regularisation.py                     # the blog's 800 epochs
    python bench/regularisation.py --epochs 100 --lambdas 0.01,0.2 --out-dir study
"""

import sys

from fastmlp.experiments.study import main

if __name__ == "__main__":
    sys.exit(main())
