/* integrate: a vow plugin with one task function, for `vow map`.
 *
 *   {"f": "sin", "a": 0, "b": 3.141592653589793, "n": 1000000}
 *     -> the integral of f from a to b by the midpoint rule with n steps
 *
 * f is one of sin, exp, x2 (x squared), sqrt. Build it as a shared
 * library and give it to vow map:
 *
 *   vow map build/examples/integrate.so integrate < jobs.jsonl
 */
#include <math.h>
#include <string.h>

#include <vow/worker.h>

static const msgpack_object* field(const msgpack_object* map, const char* key) {
  uint32_t i;
  if (map->type != MSGPACK_OBJECT_MAP)
    return NULL;
  for (i = 0; i < map->via.map.size; i++) {
    const msgpack_object* k = &map->via.map.ptr[i].key;
    if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
        memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
      return &map->via.map.ptr[i].val;
  }
  return NULL;
}

static bool number(const msgpack_object* o, double* out) {
  if (o == NULL)
    return false;
  if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
    *out = o->via.f64;
  else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
    *out = (double)o->via.u64;
  else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
    *out = (double)o->via.i64;
  else
    return false;
  return true;
}

static double x2(double x) {
  return x * x;
}

static int integrate(vow_task_ctx_t* task, const msgpack_object* args,
                     msgpack_packer* result) {
  const msgpack_object* f = field(args, "f");
  double a, b, n, h, sum = 0;
  double (*fn)(double) = NULL;
  long i, steps;
  if (f == NULL || f->type != MSGPACK_OBJECT_STR)
    return vow_task_fail(task, "want {\"f\": name, \"a\", \"b\", \"n\"}");
  if (f->via.str.size == 3 && memcmp(f->via.str.ptr, "sin", 3) == 0)
    fn = sin;
  if (f->via.str.size == 3 && memcmp(f->via.str.ptr, "exp", 3) == 0)
    fn = exp;
  if (f->via.str.size == 2 && memcmp(f->via.str.ptr, "x2", 2) == 0)
    fn = x2;
  if (f->via.str.size == 4 && memcmp(f->via.str.ptr, "sqrt", 4) == 0)
    fn = sqrt;
  if (fn == NULL)
    return vow_task_fail(task, "unknown function %.*s (sin, exp, x2, sqrt)",
                         (int)f->via.str.size, f->via.str.ptr);
  if (!number(field(args, "a"), &a) || !number(field(args, "b"), &b) ||
      !number(field(args, "n"), &n) || n < 1)
    return vow_task_fail(task, "a, b and n (at least 1) must be numbers");
  steps = (long)n;
  h = (b - a) / (double)steps;
  for (i = 0; i < steps; i++)
    sum += fn(a + ((double)i + 0.5) * h);
  return msgpack_pack_double(result, sum * h);
}

static const vow_function_t functions[] = {{"integrate", integrate}};
VOW_PLUGIN(functions);
