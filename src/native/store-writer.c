/*
 * Writes batches of notifications (page-cache stores) to /dev/fuse from a
 * thread of its own, one write(2) per message, for batch-writer.ts.
 *
 * Why not a worker thread in JavaScript: starting one costs a new V8
 * isolate (about 8 MB, and CPU that the first walk of a new mount paid,
 * since stores start with the first listing: the daemon took about 50 ms
 * more CPU over that walk with the worker). This thread starts in well
 * under a millisecond, and ends after THREAD_IDLE_MS with nothing to write.
 *
 * Why not libuv's thread pool: a job per batch waited for a pool thread to
 * wake, and a cold walk sent half as many READs again, for stores that
 * arrived after the reads they were for. Here batches queued while the
 * thread writes are written next, in order, as they come, and each is
 * answered on the event loop as soon as it is written.
 *
 * Not the event loop: a store waits for the page lock of a read the kernel
 * has in flight, and only the event loop answers reads.
 *
 * The descriptor belongs to the device, which closes it after close_writer
 * returns true: from then on nothing here writes to that number (which the
 * process may reuse). A write in progress is waited for; a write not yet
 * started is answered ENODEV.
 */
#define _GNU_SOURCE
#include "store-writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      napi_throw_error(env, NULL, "store-writer: " #call " failed");                               \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

struct batch {
  struct batch *next;
  napi_ref buffer_ref; /* keeps the bytes alive until the batch is answered */
  napi_ref done_ref;
  const uint8_t *bytes;
  uint32_t *lengths;
  int32_t *errnos;
  uint32_t count;
};

/* A FIFO of batches, linked through `next`. */
struct queue {
  struct batch *head, *tail;
};

struct writer {
  int fd;
  uint32_t idle_ms; /* how long the thread waits for a batch before it ends */
  pthread_mutex_t lock;
  pthread_cond_t idle;
  pthread_cond_t work; /* signalled when a batch is queued */
  /* Under lock (the thread and the event loop share them): */
  int closed;
  int writing;          /* a write(2) is in progress */
  int running;          /* the writing thread is there */
  struct queue waiting; /* batches not yet written */
  /* The event loop's alone: */
  napi_threadsafe_function answers; /* hands each written batch back to the event loop */
  uint32_t outstanding;             /* batches given and not yet answered */
  napi_ref self;                    /* held while any is, or the thread runs: the writer outlives both */
};

static void push(struct queue *q, struct batch *b) {
  b->next = NULL;
  if (q->tail) q->tail->next = b;
  else q->head = b;
  q->tail = b;
}

static struct batch *pop(struct queue *q) {
  struct batch *b = q->head;
  if (b) {
    q->head = b->next;
    if (!q->head) q->tail = NULL;
  }
  return b;
}

static void free_batch(napi_env env, struct batch *b) {
  if (env && b->buffer_ref) napi_delete_reference(env, b->buffer_ref);
  if (env && b->done_ref) napi_delete_reference(env, b->done_ref);
  free(b->lengths);
  free(b->errnos);
  free(b);
}

/* Lets the writer be collected once nothing is answered and no thread runs. */
static void release_when_idle(napi_env env, struct writer *w) {
  pthread_mutex_lock(&w->lock);
  int running = w->running;
  pthread_mutex_unlock(&w->lock);
  if (w->outstanding == 0 && !running && w->self) {
    napi_delete_reference(env, w->self);
    w->self = NULL;
  }
}

/* Calls the batch's done(errnos), an array of 0 or an errno per message, and frees it. */
static void answer(napi_env env, struct writer *w, struct batch *b) {
  napi_value done = NULL, result = NULL, global = NULL;
  if (napi_get_reference_value(env, b->done_ref, &done) != napi_ok ||
      napi_create_array_with_length(env, b->count, &result) != napi_ok ||
      napi_get_global(env, &global) != napi_ok)
    done = NULL;
  for (uint32_t i = 0; done && i < b->count; i++) {
    napi_value code;
    if (napi_create_int32(env, b->errnos[i], &code) == napi_ok) napi_set_element(env, result, i, code);
  }
  free_batch(env, b);
  w->outstanding--;
  release_when_idle(env, w);
  if (done) napi_call_function(env, global, done, 1, &result, NULL);
}

/* On the event loop, for each batch the thread wrote, and (with no batch) when the thread ended. */
static void on_written(napi_env env, napi_value js_callback, void *context, void *data) {
  (void)js_callback;
  /* No env: the writer is being torn down, and nobody waits any more. */
  if (!env) {
    if (data) free_batch(NULL, data);
  } else if (data) {
    answer(env, context, data);
  } else {
    release_when_idle(env, context);
  }
}

/* After the last answer, once the writer is dropped. */
static void on_answers_ended(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct writer *w = data;
  pthread_mutex_destroy(&w->lock);
  pthread_cond_destroy(&w->idle);
  pthread_cond_destroy(&w->work);
  free(w);
}

static void on_writer_dropped(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct writer *w = data;
  /* A thread still holding the answers (ending) keeps the writer until it lets go. */
  napi_release_threadsafe_function(w->answers, napi_tsfn_release);
}

/* How long the writing thread waits for a batch before it ends (the next batch starts another). */
#define THREAD_IDLE_MS 30000

/* storeWriter(fd, idleMs = 30000) => writer */
static napi_value store_writer(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "store-writer: a descriptor is required");
    return NULL;
  }
  uint32_t idle_ms = THREAD_IDLE_MS;
  napi_valuetype type = napi_undefined;
  if (argc > 1 && napi_typeof(env, argv[1], &type) == napi_ok && type != napi_undefined &&
      napi_get_value_uint32(env, argv[1], &idle_ms) != napi_ok) {
    napi_throw_type_error(env, NULL, "store-writer: idleMs must be a number of milliseconds");
    return NULL;
  }
  struct writer *w = calloc(1, sizeof(*w));
  if (!w) {
    napi_throw_error(env, NULL, "store-writer: out of memory");
    return NULL;
  }
  w->fd = fd;
  w->idle_ms = idle_ms;
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->idle, NULL);
  pthread_cond_init(&w->work, NULL);
  napi_value name, wrapped;
  if (napi_create_string_utf8(env, "zkfs:store-answers", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, w, on_answers_ended, w, on_written,
                                      &w->answers) != napi_ok) {
    on_answers_ended(env, w, NULL);
    napi_throw_error(env, NULL, "store-writer: cannot set up answers");
    return NULL;
  }
  /* The mount's lifetime is the device's: pending answers do not keep the process alive. */
  napi_unref_threadsafe_function(env, w->answers);
  if (napi_create_external(env, w, on_writer_dropped, NULL, &wrapped) != napi_ok) {
    napi_release_threadsafe_function(w->answers, napi_tsfn_abort);
    napi_throw_error(env, NULL, "store-writer: cannot wrap the writer");
    return NULL;
  }
  return wrapped;
}

static struct writer *writer_arg(napi_env env, napi_value value) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok || !data) {
    napi_throw_type_error(env, NULL, "store-writer: not a writer");
    return NULL;
  }
  return data;
}

/* Writes one batch's messages, unless the writer is closed (ENODEV). */
static void write_one(struct writer *w, struct batch *b) {
  size_t at = 0;
  for (uint32_t i = 0; i < b->count; i++) {
    size_t length = b->lengths[i];
    pthread_mutex_lock(&w->lock);
    if (w->closed) {
      pthread_mutex_unlock(&w->lock);
      b->errnos[i] = ENODEV;
      at += length;
      continue;
    }
    w->writing = 1;
    pthread_mutex_unlock(&w->lock);
    ssize_t n;
    do n = write(w->fd, b->bytes + at, length);
    while (n < 0 && errno == EINTR);
    b->errnos[i] = n < 0 ? errno : ((size_t)n == length ? 0 : EIO);
    pthread_mutex_lock(&w->lock);
    w->writing = 0;
    pthread_cond_broadcast(&w->idle);
    pthread_mutex_unlock(&w->lock);
    at += length;
  }
}

/* The writing thread: batches in order, as they come. */
static void *run_thread(void *data) {
  struct writer *w = data;
  pthread_setname_np(pthread_self(), "zkfs-store");
  for (;;) {
    pthread_mutex_lock(&w->lock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += w->idle_ms / 1000;
    until.tv_nsec += (long)(w->idle_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    int ended = 0;
    while (!w->waiting.head && !ended)
      ended = w->closed || pthread_cond_timedwait(&w->work, &w->lock, &until) == ETIMEDOUT;
    if (!w->waiting.head) {
      w->running = 0;
      pthread_mutex_unlock(&w->lock);
      /* The writer lives until every thread has let go of its answers (on_answers_ended). */
      napi_call_threadsafe_function(w->answers, NULL, napi_tsfn_nonblocking);
      napi_release_threadsafe_function(w->answers, napi_tsfn_release);
      return NULL;
    }
    struct batch *b = pop(&w->waiting);
    pthread_mutex_unlock(&w->lock);
    write_one(w, b);
    if (napi_call_threadsafe_function(w->answers, b, napi_tsfn_nonblocking) != napi_ok) free_batch(NULL, b);
  }
}

/* Starts the writing thread; false when it could not be. */
static int start_thread(struct writer *w) {
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  int ok = napi_acquire_threadsafe_function(w->answers) == napi_ok;
  if (ok && pthread_create(&thread, &attr, run_thread, w) != 0) {
    napi_release_threadsafe_function(w->answers, napi_tsfn_release);
    ok = 0;
  }
  pthread_attr_destroy(&attr);
  return ok;
}

/* writeBatch(writer, bytes: Buffer, lengths: number[], done) */
static napi_value write_batch_js(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) {
    napi_throw_type_error(env, NULL, "store-writer: writeBatch(writer, bytes, lengths, done)");
    return NULL;
  }
  struct writer *w = writer_arg(env, argv[0]);
  if (!w) return NULL;
  struct batch *b = calloc(1, sizeof(*b));
  if (!b) {
    napi_throw_error(env, NULL, "store-writer: out of memory");
    return NULL;
  }
  void *bytes = NULL;
  size_t total = 0;
  uint32_t count = 0;
  if (napi_get_buffer_info(env, argv[1], &bytes, &total) != napi_ok ||
      napi_get_array_length(env, argv[2], &count) != napi_ok) {
    free_batch(env, b);
    napi_throw_type_error(env, NULL, "store-writer: bytes must be a Buffer and lengths an array");
    return NULL;
  }
  b->bytes = bytes;
  b->count = count;
  b->lengths = calloc(count ? count : 1, sizeof(uint32_t));
  b->errnos = calloc(count ? count : 1, sizeof(int32_t));
  if (!b->lengths || !b->errnos) {
    free_batch(env, b);
    napi_throw_error(env, NULL, "store-writer: out of memory");
    return NULL;
  }
  size_t sum = 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    if (napi_get_element(env, argv[2], i, &item) != napi_ok ||
        napi_get_value_uint32(env, item, &b->lengths[i]) != napi_ok) {
      free_batch(env, b);
      napi_throw_type_error(env, NULL, "store-writer: lengths must be whole numbers");
      return NULL;
    }
    sum += b->lengths[i];
  }
  if (sum > total) {
    free_batch(env, b);
    napi_throw_range_error(env, NULL, "store-writer: the lengths add up to more than the bytes");
    return NULL;
  }
  if (napi_create_reference(env, argv[1], 1, &b->buffer_ref) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &b->done_ref) != napi_ok ||
      (!w->self && napi_create_reference(env, argv[0], 1, &w->self) != napi_ok)) {
    free_batch(env, b);
    napi_throw_error(env, NULL, "store-writer: cannot hold the batch");
    return NULL;
  }
  w->outstanding++;
  pthread_mutex_lock(&w->lock);
  push(&w->waiting, b);
  int start = !w->running;
  w->running = 1;
  pthread_cond_signal(&w->work);
  pthread_mutex_unlock(&w->lock);
  if (start && !start_thread(w)) {
    pthread_mutex_lock(&w->lock);
    struct queue dropped = w->waiting;
    w->waiting.head = w->waiting.tail = NULL;
    w->running = 0;
    pthread_mutex_unlock(&w->lock);
    for (struct batch *d; (d = pop(&dropped));) {
      for (uint32_t i = 0; i < d->count; i++) d->errnos[i] = EAGAIN;
      answer(env, w, d);
    }
  }
  return NULL;
}

/*
 * closeWriter(writer, waitMs) => whether no write is in progress: nothing
 * is written after this returns, and when it returns true the descriptor
 * may be closed.
 */
static napi_value close_writer(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct writer *w = argc >= 1 ? writer_arg(env, argv[0]) : NULL;
  if (!w) return NULL;
  uint32_t wait_ms = 0;
  if (argc >= 2) napi_get_value_uint32(env, argv[1], &wait_ms);
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += wait_ms / 1000;
  deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&w->lock);
  w->closed = 1;
  pthread_cond_signal(&w->work);
  while (w->writing) {
    if (pthread_cond_timedwait(&w->idle, &w->lock, &deadline) == ETIMEDOUT) break;
  }
  int quiet = !w->writing;
  pthread_mutex_unlock(&w->lock);
  napi_value result;
  CHECK(napi_get_boolean(env, quiet, &result));
  return result;
}

napi_status define_store_writer(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"storeWriter", NULL, store_writer, NULL, NULL, NULL, napi_default, NULL},
      {"writeBatch", NULL, write_batch_js, NULL, NULL, NULL, napi_default, NULL},
      {"closeWriter", NULL, close_writer, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
