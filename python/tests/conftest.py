import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TASKS = os.path.join(HERE, "tasks_for_tests.py")


@pytest.fixture
def pool():
    import vow
    with vow.Pool(workers=2, module=TASKS) as p:
        yield p


sys.path.insert(0, HERE)
