"""The numbers python/vow copies from the C headers by hand (message
types, limits, failure kinds, states, the layout of the structs ctypes
passes) are held against the headers themselves, as printed by
tests/mirror_facts.c, so that a change on one side fails here instead of
in a user's run."""
import ctypes
import os
import subprocess

import pytest

from vow import _lib, errors, worker

FACTS = os.environ.get("VOW_MIRROR_FACTS")


@pytest.fixture(scope="module")
def facts():
    if not FACTS:
        pytest.skip("VOW_MIRROR_FACTS names no build of tests/mirror_facts.c")
    out = subprocess.run([FACTS], check=True, capture_output=True,
                         text=True).stdout
    consts, fields, sizes = {}, {}, {}
    for line in out.splitlines():
        word = line.split()
        if word[0] == "const":
            consts[word[1]] = int(word[2])
        elif word[0] == "field":
            fields.setdefault(word[1], []).append(
                (word[2], int(word[3]), int(word[4])))
        elif word[0] == "size":
            sizes[word[1]] = int(word[2])
    return consts, fields, sizes


def test_the_worker_speaks_the_c_protocol(facts):
    consts = facts[0]
    assert worker.VERSION == consts["VERSION"]
    for key, value in consts.items():
        if key.startswith("MSG_"):  # every message type the C side has
            assert getattr(worker, key[4:], None) == value, key
    assert worker.VALUE_MAX_BYTES == consts["VALUE_MAX_BYTES"]
    assert worker.VALUE_MAX_OBJECTS == consts["VALUE_MAX_OBJECTS"]
    assert worker.TASK_ERROR == consts["FAIL_TASK_ERROR"]
    assert worker.PR_SET_PDEATHSIG == consts["PR_SET_PDEATHSIG"]
    assert worker.PARENT_DEATH_SIGNAL == consts["PARENT_DEATH_SIGNAL"]
    assert worker.EXIT_CANNOT_SERVE == consts["WORKER_EXIT_CANNOT_SERVE"]


def test_failure_kinds_map_to_their_classes(facts):
    consts = facts[0]
    want = {"CANCELLED": errors.Cancelled, "TIMEOUT": errors.TaskTimeout,
            "WORKER_DIED": errors.WorkerDied, "POISON": errors.PoisonTask,
            "TASK_ERROR": errors.TaskError, "PROTOCOL": errors.ProtocolError,
            "QUEUE_FULL": errors.QueueFull, "BAD_INPUT": errors.BadInput}
    for name, cls in want.items():
        assert errors.error_class(consts["FAIL_" + name]) is cls, name


def test_states_modes_and_libuv_numbers(facts):
    consts = facts[0]
    assert (_lib.PENDING, _lib.FULFILLED, _lib.REJECTED, _lib.WAITING) == (
        consts["PENDING"], consts["FULFILLED"], consts["REJECTED"],
        consts["WAITING"])
    assert _lib.STDERR_MODES == {"relay": consts["STDERR_RELAY"],
                                 "inherit": consts["STDERR_INHERIT"],
                                 "discard": consts["STDERR_DISCARD"]}
    assert _lib.UV_ENOMEM == consts["UV_ENOMEM"]
    assert (_lib.UV_RUN_DEFAULT, _lib.UV_RUN_ONCE, _lib.UV_RUN_NOWAIT) == (
        consts["UV_RUN_DEFAULT"], consts["UV_RUN_ONCE"],
        consts["UV_RUN_NOWAIT"])


@pytest.mark.parametrize("c_name, py_struct", [
    ("vow_pool_options_t", _lib.PoolOptions),
    ("vow_origin_t", _lib.Origin),
    ("vow_settled_t", _lib.Settled),
])
def test_structs_have_the_c_layout(facts, c_name, py_struct):
    fields, sizes = facts[1], facts[2]
    py = [(name, getattr(py_struct, name).offset, getattr(py_struct, name).size)
          for name, _ in py_struct._fields_]
    assert py == fields[c_name]
    assert ctypes.sizeof(py_struct) == sizes[c_name]
