"""The Python worker, as a script: python3 examples/python/vow_worker.py
MODULE serves MODULE's functions to a vow parent. The worker itself is
the vow package's vow.worker (python/vow/worker.py); installed, this file
is the module vow_worker, so `python3 -m vow_worker MODULE` works too."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "python"))
from vow.worker import main, seed  # noqa: E402,F401

if __name__ == "__main__":
    main()
