"""libvow through ctypes: the handful of calls the package makes, with
their argument and result types, and the libuv calls that let Python
drive vow's loop from its own (select, asyncio, Twisted)."""
import ctypes
import ctypes.util
import os

try:
    from . import _where  # written by CMake: the library it built
except ImportError:  # a copy of the sources without a build
    _where = None


def _load():
    candidates = [os.environ.get("VOW_LIBRARY"),
                  getattr(_where, "library", None),
                  ctypes.util.find_library("vow"), "libvow.so.0"]
    errors = []
    for path in candidates:
        if not path:
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError("vow: cannot load libvow (set VOW_LIBRARY to its "
                      "path, or install vow with cmake --install): "
                      + "; ".join(errors))


lib = _load()
uv = ctypes.CDLL(ctypes.util.find_library("uv") or "libuv.so.1")

c_void_p = ctypes.c_void_p
c_char_p = ctypes.c_char_p
c_size_t = ctypes.c_size_t
c_uint = ctypes.c_uint
c_int = ctypes.c_int
c_uint64 = ctypes.c_uint64
c_bool = ctypes.c_bool

# vow_state_t
PENDING, FULFILLED, REJECTED, WAITING = range(4)
UV_ENOMEM = -12
# uv_run_mode
UV_RUN_DEFAULT, UV_RUN_ONCE, UV_RUN_NOWAIT = range(3)
# vow_stderr_mode_t
STDERR_MODES = {"relay": 0, "inherit": 1, "discard": 2}


class PoolOptions(ctypes.Structure):
    """vow_pool_options_t, field for field (include/vow/pool.h)."""
    _fields_ = [
        ("size", c_size_t),
        ("workers", c_uint),
        ("worker_argv", ctypes.POINTER(c_char_p)),
        ("functions", c_void_p),
        ("nfunctions", c_size_t),
        ("in_flight", c_uint),
        ("queue_limit", c_size_t),
        ("timeout_ms", c_uint64),
        ("retries", c_uint),
        ("recycle_after", c_uint),
        ("seed", c_uint64),
        ("cancel_grace_ms", c_uint64),
        ("start_attempts", c_uint),
        ("env", ctypes.POINTER(c_char_p)),
        ("cwd", c_char_p),
        ("limits", c_char_p),
        ("stderr_mode", c_int),
        ("stall_ms", c_uint64),
        ("launchers", c_void_p),
        ("nlaunchers", c_size_t),
        ("hello_timeout_ms", c_uint64),
        ("inherit_stdout", c_bool),
        ("liveness_ms", c_uint64),
        ("shm_threshold", c_uint64),
        ("shm_max_bytes", c_uint64),
        ("shm_max_segments", c_uint64),
    ]


class Launcher(ctypes.Structure):
    """vow_launcher_t."""
    _fields_ = [("workers", c_uint), ("argv", ctypes.POINTER(c_char_p))]


class Origin(ctypes.Structure):
    """vow_origin_t."""
    _fields_ = [
        ("task_id", c_uint64),
        ("function", c_char_p),
        ("path", c_char_p),
        ("pid", c_int),
        ("exit_status", c_int),
        ("term_signal", c_int),
    ]


class Settled(ctypes.Structure):
    """vow_settled_t (include/vow/collect.h)."""
    _fields_ = [
        ("tag", c_uint64),
        ("state", c_int),
        ("value", c_void_p),
        ("bytes", c_void_p),
        ("len", c_size_t),
        ("failure", c_void_p),
        ("promise", c_void_p),
    ]


def _fn(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = argtypes
    return f


def _uv(name, restype, *argtypes):
    f = getattr(uv, name)
    f.restype = restype
    f.argtypes = argtypes
    return f


ctx_new = _fn("vow_ctx_new", c_void_p, c_void_p, ctypes.POINTER(c_int))
ctx_close = _fn("vow_ctx_close", None, c_void_p)
ctx_loop = _fn("vow_ctx_loop", c_void_p, c_void_p)

pool_options_init = _fn("vow_pool_options_init", None,
                        ctypes.POINTER(PoolOptions))
pool_new = _fn("vow_pool_new", c_void_p, c_void_p,
               ctypes.POINTER(PoolOptions), ctypes.POINTER(c_int))
pool_map = _fn("vow_pool_map", c_void_p, c_void_p, c_char_p, c_void_p)
pool_map_chunked = _fn("vow_pool_map_chunked", c_void_p, c_void_p, c_char_p,
                       c_void_p, c_size_t)
pool_shutdown = _fn("vow_pool_shutdown", c_void_p, c_void_p, c_bool)
pool_free = _fn("vow_pool_free", None, c_void_p)

value_new_msgpack = _fn("vow_value_new_msgpack", c_void_p, c_char_p, c_size_t,
                        ctypes.POINTER(c_int))
value_new_shared_from = _fn("vow_value_new_shared_from", c_void_p,
                            ctypes.POINTER(c_void_p),
                            ctypes.POINTER(c_size_t), c_size_t, c_size_t,
                            ctypes.POINTER(c_int))
value_release = _fn("vow_value_release", None, c_void_p)
value_new_with_parts = _fn("vow_value_new_with_parts", c_void_p, c_char_p,
                           c_size_t, ctypes.POINTER(c_void_p), c_size_t,
                           ctypes.POINTER(c_int))
value_ref = _fn("vow_value_ref", c_void_p, c_void_p)
value_is_shared = _fn("vow_value_is_shared", c_bool, c_void_p)
value_bytes = _fn("vow_value_bytes", c_void_p, c_void_p,
                  ctypes.POINTER(c_size_t))
pool_submit = _fn("vow_pool_submit", c_void_p, c_void_p, c_char_p, c_void_p)
pool_submit_timeout = _fn("vow_pool_submit_timeout", c_void_p, c_void_p,
                          c_char_p, c_void_p, c_uint64)
promise_release = _fn("vow_promise_release", None, c_void_p)
cancel = _fn("vow_cancel", None, c_void_p)
promise_state = _fn("vow_promise_state", c_int, c_void_p)
promise_started = _fn("vow_promise_started", c_bool, c_void_p)

failure_kind = _fn("vow_failure_kind", c_int, c_void_p)
failure_code = _fn("vow_failure_code", c_int, c_void_p)
failure_kind_name = _fn("vow_failure_kind_name", c_char_p, c_int)
failure_message = _fn("vow_failure_message", c_char_p, c_void_p)
failure_detail = _fn("vow_failure_detail", c_char_p, c_void_p)
failure_origin = _fn("vow_failure_origin", ctypes.POINTER(Origin), c_void_p)

collector_new = _fn("vow_collector_new", c_void_p, c_void_p)
collector_add = _fn("vow_collector_add", c_int, c_void_p, c_void_p, c_uint64)
collector_submit_many = _fn("vow_collector_submit_many", c_size_t, c_void_p,
                             c_void_p, c_char_p, c_void_p, c_size_t,
                             c_uint64, c_uint64, ctypes.POINTER(c_void_p),
                             ctypes.POINTER(c_int))
collector_take_into = _fn("vow_collector_take_into", c_size_t, c_void_p,
                          ctypes.POINTER(Settled), c_size_t, c_void_p,
                          c_size_t, ctypes.POINTER(c_size_t))
collector_ready = _fn("vow_collector_ready", c_size_t, c_void_p)
collector_free = _fn("vow_collector_free", None, c_void_p)

uv_run = _uv("uv_run", c_int, c_void_p, c_int)
uv_backend_fd = _uv("uv_backend_fd", c_int, c_void_p)
uv_backend_timeout = _uv("uv_backend_timeout", c_int, c_void_p)
uv_strerror = _uv("uv_strerror", c_char_p, c_int)


def strerror(code):
    return uv_strerror(code).decode()
