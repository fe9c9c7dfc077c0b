/* corio: a C runtime for asynchronous and parallel programs, in the style of
 * Python's asyncio and concurrent.futures, on io_uring. */
#ifndef CORIO_H
#define CORIO_H

#include "corio/common.h"
#include "corio/loop.h"
#include "corio/future.h"
#include "corio/task.h"
#include "corio/group.h"
#include "corio/sync.h"
#include "corio/queue.h"
#include "corio/net.h"
#include "corio/stream.h"
#include "corio/executor.h"

#endif
