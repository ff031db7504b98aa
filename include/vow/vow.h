/* vow — promises on a libuv loop, parallel work on worker processes.
 * The umbrella header: include this one. */
#ifndef VOW_VOW_H
#define VOW_VOW_H

#include "common.h"
#include "failure.h"
#include "value.h"
#include "context.h"
#include "promise.h"
#include "sync.h"
#include "io.h"
#include "worker.h"
#include "pool.h"
#include "collect.h"

#endif /* VOW_VOW_H */
