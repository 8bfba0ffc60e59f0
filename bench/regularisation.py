"""The seeds' regularisation study (see fastmlp/study.py; also ``fastmlp study``).

    python bench/regularisation.py                     # the seeds' 800 epochs
    python bench/regularisation.py --epochs 100 --lambdas 0.01,0.2 --out-dir study
"""

import sys

from fastmlp.study import main

if __name__ == "__main__":
    sys.exit(main())
