/*
 * Reads FUSE requests on Node's own event loop and answers three that
 * programs send for every file, without entering JavaScript: OPEN for
 * reading of a node the daemon has said may be opened this way, RELEASE of
 * a handle given out here, and GETXATTR of an attribute zkfs never has
 * (ls -l asks for two per file). Every other request
 * goes to JavaScript, on the same thread and in the same turn, as the
 * JavaScript reader (request-reader.ts) hands it over.
 *
 * Why: a walk of a read-write mount costs one OPEN and one RELEASE per
 * file, and entering JavaScript (and leaving it, with its microtask and tick
 * queues) took more of each request's time than the kernel's round trip.
 *
 * What keeps it correct: the daemon allows a node after answering a
 * read-only OPEN of it from memory itself, or listing it from memory; each
 * allowance carries the daemon's change count (a cell of a Float64Array the
 * daemon increments when its cache drops or replaces anything, and on every
 * request that may change something), and an OPEN is answered here only
 * while the count is the one the allowance was made at. So after any
 * change, opens go to JavaScript again until it allows anew.
 * Handles given out here have bit 52 set; JavaScript reads through them by
 * the node's path (as on a read-only mount) if the kernel ever asks.
 *
 * Where the kernel offers FUSE over io_uring, requests come instead on a
 * ring per CPU (fuse-ring.c), whose threads make the same answers
 * (fast_reply, so the allowances sit under a lock) and hand the rest to this
 * thread, which gives them to JavaScript as it does those it reads; their
 * replies, sent through send(), go back to the ring entry they came in.
 * FORGET and INTERRUPT still come on /dev/fuse, read here.
 *
 * After answering here it polls for the next request rather than sleeping,
 * for the window that JavaScript's poller (busy-poll.ts) publishes in the
 * array's cell 1 (0 while its trials find that polling does not pay, or a
 * request waits for ZooKeeper), while most recent answers here were
 * followed by a request within it: the next request of a walk comes within
 * microseconds, and waking from epoll_wait for each costs more. It reads
 * the descriptor in a loop for up to one window (at most SPIN_LIMIT_NS),
 * then lets the event loop run, kept from sleeping by an idle handle (as
 * setImmediate does) until the window closes, so replies from ZooKeeper and
 * timers never wait longer than that. Each request answered here leaves its
 * cycle (from its arrival to the next request's, and whether a window
 * followed it) in a ring in the same array, from cell 3, which JavaScript
 * drains into those trials: before each request it handles, and when told
 * the ring is a quarter full.
 */
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "fuse-ring.h"
#include "store-writer.h"

#define FUSE_OPEN 14
#define FUSE_RELEASE 18
#define FUSE_GETXATTR 22
#define FAST_HANDLE_BASE (1ULL << 52)
#define O_ACCMODE_BITS 3

/* The shared Float64Array's cells (request-reader.ts lays it out alike). */
#define CELL_CHANGES 0
#define CELL_WINDOW 1
#define CELL_CYCLES 2 /* cycles written to the ring so far */
#define CELL_RING 3
/* How fast the hit rate follows recent gaps, and the share of hits below which no window opens (busy-poll.ts). */
#define HIT_WEIGHT 0.125
#define HIT_THRESHOLD 0.5
/* The longest the loop's other work waits while this reads in a loop. */
#define SPIN_LIMIT_NS 1000000ULL

struct in_header {
  uint32_t len;
  uint32_t opcode;
  uint64_t unique;
  uint64_t nodeid;
  uint32_t uid;
  uint32_t gid;
  uint32_t pid;
  uint16_t total_extlen;
  uint16_t padding;
};
struct open_in {
  uint32_t flags;
  uint32_t open_flags;
};
struct release_in {
  uint64_t fh;
  uint32_t flags;
  uint32_t release_flags;
  uint64_t lock_owner;
};
struct getxattr_in {
  uint32_t size;
  uint32_t padding;
};
struct out_header {
  uint32_t len;
  int32_t error;
  uint64_t unique;
};
struct open_out {
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;
};

/* A request that came over the ring, handed to JavaScript: where its reply goes. */
struct pending {
  uint64_t unique;
  uint32_t token;
};

/* One allowance: node id (0 = empty slot), the change count it was made at, and OPEN's reply flags. */
struct slot {
  uint64_t node;
  double count;
  uint32_t flags;
};

struct reader {
  napi_env env;
  int fd;
  uv_poll_t poll;
  int polling;
  uv_idle_t idle;       /* active while a window after an answer here is open */
  int idling;
  uint64_t poll_until;  /* uv_hrtime() at which that window closes */
  uint64_t arrived_at;  /* when the last request answered here arrived; 0: the last went to JavaScript */
  int polled;           /* whether a window opened after answering it */
  uint64_t answered_at; /* when it was answered, if a window could have followed: its gap is scored */
  uint64_t window_ns;   /* the window then */
  double hit_rate;      /* recent share of such answers followed by a request within the window */
  double windows, hits, misses;
  double notified;      /* cycles written when JavaScript was last told */
  unsigned char *buf;
  size_t size;
  napi_ref buffer;      /* the Buffer over buf handed to JavaScript */
  napi_ref on_request;  /* (buffer, length) => void */
  napi_ref on_end;      /* (errno, queue) => void; queue: the io_uring queue that failed, or -1 */
  napi_ref resource;    /* the async resource callbacks are made on behalf of */
  napi_ref on_cycles;   /* () => void: the ring is a quarter full */
  napi_ref counts_ref;  /* the shared Float64Array (a double never wraps round) */
  double *cells;
  size_t ring;          /* cells in the ring (0: none) */
  napi_async_context context;
  /* Allowances, read by the ring's threads too (fuse-ring.c): under slots_lock. */
  pthread_mutex_t slots_lock;
  struct slot *slots;
  size_t capacity;      /* a power of two */
  size_t used;
  uint64_t next_handle; /* atomic */
  uint64_t opens;       /* answered here, atomic */
  uint64_t releases;
  uint64_t xattrs;      /* GETXATTR answered ENODATA here */
  int ended;
  /* Where requests come over io_uring (fuse-ring.c): its threads hand JavaScript's share to this thread. */
  struct fuse_ring *uring;
  uv_async_t handed;    /* wakes this thread for requests in `inbox` */
  int has_async;
  pthread_mutex_t inbox_lock;
  struct ring_request *inbox, *inbox_tail;
  int ring_failure;     /* under inbox_lock: the errno of the first queue that failed, or 0 */
  int failed_queue;
  struct pending *pending; /* requests JavaScript has yet to answer, and the ring entries holding them */
  size_t npending, pending_room;
  /* Freed when JavaScript has dropped it and both its handles have closed. */
  int holders;
};

static size_t slot_index(uint64_t node, size_t capacity) {
  /* Node ids are handed out in sequence: a multiplicative hash spreads them. */
  return (size_t)((node * 0x9E3779B97F4A7C15ULL) >> 17) & (capacity - 1);
}

static struct slot *find_slot(struct reader *r, uint64_t node) {
  size_t i = slot_index(node, r->capacity);
  for (;;) {
    struct slot *s = &r->slots[i];
    if (s->node == node || s->node == 0) return s;
    i = (i + 1) & (r->capacity - 1);
  }
}

static int grow(struct reader *r) {
  size_t old_capacity = r->capacity;
  struct slot *old = r->slots;
  size_t capacity = old_capacity * 2;
  /* Past a million nodes, start over: allowances are only a shortcut. */
  if (capacity > (1u << 21)) capacity = old_capacity;
  struct slot *slots = calloc(capacity, sizeof(struct slot));
  if (!slots) return -1;
  r->slots = slots;
  r->capacity = capacity;
  r->used = 0;
  if (capacity == old_capacity) {
    free(old);
    return 0;
  }
  for (size_t i = 0; i < old_capacity; i++) {
    if (old[i].node == 0) continue;
    *find_slot(r, old[i].node) = old[i];
    r->used++;
  }
  free(old);
  return 0;
}

/* Writes a reply to /dev/fuse: 0, or an errno (ENOENT: interrupted meanwhile; ENODEV: unmounted). */
static int reply(struct reader *r, const void *message, size_t length) {
  ssize_t written;
  do {
    written = write(r->fd, message, length);
  } while (written < 0 && errno == EINTR);
  return written < 0 ? errno : 0;
}

static size_t header_reply(unsigned char *out, uint64_t unique, int32_t error, size_t payload) {
  struct out_header h = {(uint32_t)(sizeof(h) + payload), error, unique};
  memcpy(out, &h, sizeof(h));
  return sizeof(h) + payload;
}

/*
 * The reply to the request in `req` if it may be answered here, written
 * into `out` (room for 64 bytes): its length, or 0. Called on this thread
 * and on the ring's.
 */
static size_t fast_reply(struct reader *r, const unsigned char *req, size_t length, unsigned char *out) {
  const struct in_header *h = (const struct in_header *)req;
  if (length < sizeof(*h)) return 0;
  if (h->opcode == FUSE_OPEN && length >= sizeof(*h) + sizeof(struct open_in)) {
    const struct open_in *in = (const struct open_in *)(req + sizeof(*h));
    if ((in->flags & O_ACCMODE_BITS) != 0) return 0;
    pthread_mutex_lock(&r->slots_lock);
    struct slot *s = find_slot(r, h->nodeid);
    int allowed = s->node == h->nodeid && s->count == r->cells[CELL_CHANGES];
    uint32_t flags = s->flags;
    pthread_mutex_unlock(&r->slots_lock);
    if (!allowed) return 0;
    struct open_out o;
    memset(&o, 0, sizeof(o));
    o.fh = FAST_HANDLE_BASE + __atomic_fetch_add(&r->next_handle, 1, __ATOMIC_RELAXED);
    o.open_flags = flags;
    memcpy(out + sizeof(struct out_header), &o, sizeof(o));
    __atomic_fetch_add(&r->opens, 1, __ATOMIC_RELAXED);
    return header_reply(out, h->unique, 0, sizeof(o));
  }
  if (h->opcode == FUSE_RELEASE && length >= sizeof(*h) + sizeof(struct release_in)) {
    const struct release_in *in = (const struct release_in *)(req + sizeof(*h));
    if (in->fh < FAST_HANDLE_BASE) return 0;
    __atomic_fetch_add(&r->releases, 1, __ATOMIC_RELAXED);
    return header_reply(out, h->unique, 0, 0);
  }
  if (h->opcode == FUSE_GETXATTR && length > sizeof(*h) + sizeof(struct getxattr_in)) {
    /*
     * The only attributes zkfs has are user.zk.* (attr-ops.ts). Any other
     * name has none, whatever the node: ls -l asks for two of them on every
     * file it lists, and the kernel for security.capability before a write.
     */
    static const char prefix[] = "user.zk.";
    const char *name = (const char *)(req + sizeof(*h) + sizeof(struct getxattr_in));
    size_t room = length - sizeof(*h) - sizeof(struct getxattr_in);
    if (memchr(name, 0, room) == NULL) return 0;
    if (strncmp(name, prefix, sizeof(prefix) - 1) == 0) return 0;
    __atomic_fetch_add(&r->xattrs, 1, __ATOMIC_RELAXED);
    return header_reply(out, h->unique, -ENODATA, 0);
  }
  return 0;
}

/* Answers the request in buf here if it may be; 1 if answered. */
static int answer_fast(struct reader *r, size_t length) {
  unsigned char out[64];
  size_t n = fast_reply(r, r->buf, length, out);
  if (n == 0) return 0;
  reply(r, out, n);
  return 1;
}

static void call_js(struct reader *r, napi_ref fn_ref, size_t argc, napi_value *argv) {
  napi_env env = r->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value fn, resource;
  napi_get_reference_value(env, fn_ref, &fn);
  napi_get_reference_value(env, r->resource, &resource);
  napi_value result;
  napi_status status = napi_make_callback(env, r->context, resource, fn, argc, argv, &result);
  if (status == napi_pending_exception) {
    /* As for any callback from the event loop: the process's uncaught exception handling decides. */
    napi_value error;
    if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
  }
  napi_close_handle_scope(env, scope);
}

static void stop_window(struct reader *r) {
  if (r->idling) {
    uv_idle_stop(&r->idle);
    r->idling = 0;
  }
}

static void on_idle(uv_idle_t *handle) {
  struct reader *r = handle->data;
  if (uv_hrtime() >= r->poll_until) stop_window(r);
}

/* After answering a request that arrived at `arrived` here: keeps the loop polling for the published window, if that pays. */
static void open_window(struct reader *r, uint64_t arrived) {
  double us = r->cells[CELL_WINDOW];
  r->arrived_at = arrived;
  r->polled = 0;
  if (!(us > 0) || r->ended) return;
  uint64_t now = uv_hrtime();
  r->answered_at = now;
  r->window_ns = (uint64_t)(us * 1000);
  if (r->hit_rate < HIT_THRESHOLD) return;
  r->polled = 1;
  r->poll_until = now + r->window_ns;
  if (r->idling) return;
  if (uv_idle_start(&r->idle, on_idle) == 0) {
    r->idling = 1;
    r->windows++;
  }
}

static void stop(struct reader *r) {
  stop_window(r);
  r->arrived_at = 0;
  r->answered_at = 0;
  if (r->polling) {
    uv_poll_stop(&r->poll);
    r->polling = 0;
  }
}

/* Reading ends with `error`, from /dev/fuse (queue -1) or from that io_uring queue. */
static void end_from(struct reader *r, int error, int queue) {
  if (r->ended) return;
  r->ended = 1;
  stop(r);
  napi_handle_scope scope;
  napi_open_handle_scope(r->env, &scope);
  napi_value args[2];
  napi_create_int32(r->env, error, &args[0]);
  napi_create_int32(r->env, queue, &args[1]);
  call_js(r, r->on_end, 2, args);
  napi_close_handle_scope(r->env, scope);
}

static void end(struct reader *r, int error) {
  end_from(r, error, -1);
}

/* Leaves a cycle of `ms` in the ring, and tells JavaScript once a quarter of it is new. */
static void record_cycle(struct reader *r, double ms, int polled) {
  if (r->ring == 0) return;
  double written = r->cells[CELL_CYCLES];
  r->cells[CELL_RING + (size_t)((uint64_t)written % r->ring)] = polled ? ms : -1 - ms;
  r->cells[CELL_CYCLES] = ++written;
  if (written - r->notified < (double)(r->ring / 4)) return;
  r->notified = written;
  call_js(r, r->on_cycles, 0, NULL);
}

/* A request has arrived at `now`: ends the cycle of the last one answered here, and scores its gap. */
static void note_arrival(struct reader *r, uint64_t now) {
  if (r->answered_at) {
    int hit = now - r->answered_at < r->window_ns;
    r->hit_rate += (hit - r->hit_rate) * HIT_WEIGHT;
    if (hit) r->hits++;
    else r->misses++;
    r->answered_at = 0;
  }
  if (r->arrived_at) {
    uint64_t arrived = r->arrived_at;
    r->arrived_at = 0;
    record_cycle(r, (double)(now - arrived) / 1e6, r->polled);
  }
}

/* Reads one request: its length, 0 when there is none now, -1 when reading has ended. */
static ssize_t read_request(struct reader *r) {
  ssize_t n = read(r->fd, r->buf, r->size);
  if (n < 0) {
    /* ENOENT: a request interrupted before we read it; EAGAIN: woken with nothing left to read. */
    if (errno == EAGAIN || errno == EINTR || errno == ENOENT) return 0;
    end(r, errno);
    return -1;
  }
  if (n == 0) {
    end(r, ENODEV);
    return -1;
  }
  return n;
}

/* Hands the request of `length` bytes in buf to JavaScript, whose own poller decides what follows. */
static void to_javascript(struct reader *r, size_t length) {
  stop_window(r);
  napi_handle_scope scope;
  napi_open_handle_scope(r->env, &scope);
  napi_value argv[2];
  napi_get_reference_value(r->env, r->buffer, &argv[0]);
  napi_create_uint32(r->env, (uint32_t)length, &argv[1]);
  call_js(r, r->on_request, 2, argv);
  napi_close_handle_scope(r->env, scope);
}

/* Serves the request in buf here or in JavaScript; 1 if here. */
static int serve(struct reader *r, size_t n) {
  uint64_t now = uv_hrtime();
  note_arrival(r, now);
  if (r->ended) return 0;
  if (answer_fast(r, n)) {
    open_window(r, now);
    return 1;
  }
  to_javascript(r, n);
  return 0;
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  struct reader *r = handle->data;
  (void)events;
  if (status < 0) {
    end(r, -status);
    return;
  }
  ssize_t n = read_request(r);
  if (n <= 0 || !serve(r, (size_t)n)) return;
  /*
   * Reading in a loop here got the next request of a warm walk to the
   * daemon sooner than going round the event loop for it: the walk took
   * about an eighth less time than with the idle handle alone.
   */
  uint64_t budget = uv_hrtime() + (r->window_ns < SPIN_LIMIT_NS ? r->window_ns : SPIN_LIMIT_NS);
  while (r->polled) {
    n = read_request(r);
    if (n < 0) return;
    if (n == 0) {
      uint64_t t = uv_hrtime();
      if (t >= r->poll_until) {
        stop_window(r);
        return;
      }
      if (t >= budget) return;
      continue;
    }
    if (!serve(r, (size_t)n)) return;
  }
}

static void release_reader(struct reader *r) {
  if (--r->holders > 0) return;
  for (struct ring_request *q = r->inbox; q;) {
    struct ring_request *next = q->next;
    free(q);
    q = next;
  }
  pthread_mutex_destroy(&r->slots_lock);
  pthread_mutex_destroy(&r->inbox_lock);
  free(r->pending);
  free(r->slots);
  free(r);
}

static void on_dropped(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  release_reader(data);
}

/* The request buffer goes with the last Buffer object over it, which JavaScript may hold longer than the reader. */
static void free_buffer(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static void on_poll_closed(uv_handle_t *handle) {
  struct reader *r = handle->data;
  napi_delete_reference(r->env, r->buffer);
  napi_delete_reference(r->env, r->on_request);
  napi_delete_reference(r->env, r->on_end);
  napi_delete_reference(r->env, r->on_cycles);
  napi_delete_reference(r->env, r->counts_ref);
  napi_delete_reference(r->env, r->resource);
  napi_async_destroy(r->env, r->context);
  release_reader(r);
}

static void on_idle_closed(uv_handle_t *handle) {
  release_reader(handle->data);
}

/* Closes its handles; the reader goes when they and JavaScript's hold on it are gone. */
static void close_handles(struct reader *r) {
  uv_close((uv_handle_t *)&r->idle, on_idle_closed);
  uv_close((uv_handle_t *)&r->poll, on_poll_closed);
  if (r->has_async) uv_close((uv_handle_t *)&r->handed, on_idle_closed);
}

#define CHECK(call)                                                           \
  do {                                                                        \
    if ((call) != napi_ok) {                                                  \
      napi_throw_error(env, NULL, "fuse-fast: " #call " failed");            \
      return NULL;                                                            \
    }                                                                         \
  } while (0)

/* A call's `count` arguments into argv, the first being a reader: the reader, or NULL with an exception thrown. */
static struct reader *reader_args(napi_env env, napi_callback_info info, size_t count, napi_value *argv) {
  size_t argc = count;
  void *data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < count ||
      napi_get_value_external(env, argv[0], &data) != napi_ok || !data) {
    napi_throw_type_error(env, NULL, "fuse-fast: expected a reader and its arguments");
    return NULL;
  }
  return data;
}

/* start(fd, bufferSize, cells: Float64Array, onRequest, onEnd, onCycles) => reader */
static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "fuse-fast: start(fd, bufferSize, cells, onRequest, onEnd, onCycles)");
    return NULL;
  }
  int32_t fd;
  uint32_t size;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_value_uint32(env, argv[1], &size));
  napi_typedarray_type type;
  size_t cells;
  void *data;
  CHECK(napi_get_typedarray_info(env, argv[2], &type, &cells, &data, NULL, NULL));
  if (type != napi_float64_array || cells < CELL_RING) {
    napi_throw_type_error(env, NULL, "fuse-fast: cells must be a Float64Array of at least three");
    return NULL;
  }
  struct reader *r = calloc(1, sizeof(*r));
  if (!r) {
    napi_throw_error(env, NULL, "fuse-fast: out of memory");
    return NULL;
  }
  r->env = env;
  r->fd = fd;
  r->size = size;
  r->cells = data;
  r->ring = cells - CELL_RING;
  r->hit_rate = 1;
  r->capacity = 1024;
  pthread_mutex_init(&r->slots_lock, NULL);
  pthread_mutex_init(&r->inbox_lock, NULL);
  r->slots = calloc(r->capacity, sizeof(struct slot));
  r->buf = malloc(size);
  if (!r->slots || !r->buf) {
    free(r->slots);
    free(r->buf);
    free(r);
    napi_throw_error(env, NULL, "fuse-fast: out of memory");
    return NULL;
  }
  uv_loop_t *loop;
  int flags = fcntl(fd, F_GETFL);
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || flags < 0 ||
      fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || uv_poll_init(loop, &r->poll, fd) != 0) {
    /* Left as it was, for the reader in JavaScript that takes over. */
    if (flags >= 0) fcntl(fd, F_SETFL, flags);
    free(r->slots);
    free(r->buf);
    free(r);
    napi_throw_error(env, NULL, "fuse-fast: cannot poll the descriptor");
    return NULL;
  }
  /* Cannot fail (libuv only links the handle into the loop). */
  uv_idle_init(loop, &r->idle);
  napi_value buffer, name, wrapped, resource;
  CHECK(napi_create_external_buffer(env, size, r->buf, free_buffer, NULL, &buffer));
  CHECK(napi_create_reference(env, buffer, 1, &r->buffer));
  CHECK(napi_create_reference(env, argv[2], 1, &r->counts_ref));
  CHECK(napi_create_reference(env, argv[3], 1, &r->on_request));
  CHECK(napi_create_reference(env, argv[4], 1, &r->on_end));
  CHECK(napi_create_reference(env, argv[5], 1, &r->on_cycles));
  CHECK(napi_create_object(env, &resource));
  CHECK(napi_create_reference(env, resource, 1, &r->resource));
  CHECK(napi_create_string_utf8(env, "FuseRequests", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, resource, name, &r->context));
  r->poll.data = r;
  r->idle.data = r;
  r->holders = 3;
  if (uv_poll_start(&r->poll, UV_READABLE, on_readable) != 0) {
    fcntl(fd, F_SETFL, flags);
    r->ended = 1;
    r->holders = 2;
    close_handles(r);
    napi_throw_error(env, NULL, "fuse-fast: cannot poll the descriptor");
    return NULL;
  }
  r->polling = 1;
  CHECK(napi_create_external(env, r, on_dropped, NULL, &wrapped));
  return wrapped;
}

/* allow(reader, nodeId, openFlags, count): OPEN for reading of nodeId may be answered here while the change count is `count`. */
static napi_value allow(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  struct reader *r = reader_args(env, info, 4, argv);
  if (!r) return NULL;
  double node, count;
  uint32_t flags;
  CHECK(napi_get_value_double(env, argv[1], &node));
  CHECK(napi_get_value_uint32(env, argv[2], &flags));
  CHECK(napi_get_value_double(env, argv[3], &count));
  if (node < 1 || node >= 9007199254740992.0 || r->ended) return NULL;
  pthread_mutex_lock(&r->slots_lock);
  if ((r->used + 1) * 2 <= r->capacity || grow(r) == 0) {
    struct slot *s = find_slot(r, (uint64_t)node);
    if (s->node == 0) r->used++;
    s->node = (uint64_t)node;
    s->count = count;
    s->flags = flags;
  }
  pthread_mutex_unlock(&r->slots_lock);
  return NULL;
}

/* answered(reader) => [opens, releases, xattrs, windows, hits, misses, raised] here so far (raised: fuse-ring.c) */
static napi_value answered(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct reader *r = reader_args(env, info, 1, argv);
  if (!r) return NULL;
  const double counts[] = {(double)__atomic_load_n(&r->opens, __ATOMIC_RELAXED),
                           (double)__atomic_load_n(&r->releases, __ATOMIC_RELAXED),
                           (double)__atomic_load_n(&r->xattrs, __ATOMIC_RELAXED),
                           r->windows,
                           r->hits,
                           r->misses,
                           r->uring ? (double)ring_raised(r->uring) : 0};
  const uint32_t length = sizeof(counts) / sizeof(counts[0]);
  napi_value result;
  CHECK(napi_create_array_with_length(env, length, &result));
  for (uint32_t i = 0; i < length; i++) {
    napi_value value;
    CHECK(napi_create_double(env, counts[i], &value));
    CHECK(napi_set_element(env, result, i, value));
  }
  return result;
}

/* close(reader): stops reading; the descriptor stays open (its owner closes it). */
static napi_value close_reader(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct reader *r = reader_args(env, info, 1, argv);
  if (!r) return NULL;
  if (r->poll.data && !uv_is_closing((uv_handle_t *)&r->poll)) {
    stop(r);
    r->ended = 1;
    /* Before the descriptor closes: the rings hold it, and their threads use it. */
    ring_destroy(r->uring);
    r->uring = NULL;
    r->npending = 0;
    close_handles(r);
  }
  return NULL;
}

/* On a ring thread: the reply to a request, if it may be answered there. */
static size_t ring_answer(void *context, const unsigned char *request, size_t length, unsigned char *out,
                          size_t room) {
  if (room < 64) return 0;
  return fast_reply(context, request, length, out);
}

/* On a ring thread: a request for JavaScript, handed to this thread. */
static void ring_forward(void *context, struct ring_request *request) {
  struct reader *r = context;
  pthread_mutex_lock(&r->inbox_lock);
  if (r->inbox_tail) r->inbox_tail->next = request;
  else r->inbox = request;
  r->inbox_tail = request;
  pthread_mutex_unlock(&r->inbox_lock);
  uv_async_send(&r->handed);
}

/* On a ring thread whose ring failed: this thread ends reading, which ends the connection. */
static void ring_failed(void *context, int qid, int error) {
  struct reader *r = context;
  pthread_mutex_lock(&r->inbox_lock);
  if (!r->ring_failure) {
    r->ring_failure = error;
    r->failed_queue = qid;
  }
  pthread_mutex_unlock(&r->inbox_lock);
  uv_async_send(&r->handed);
}

static int remember_pending(struct reader *r, uint64_t unique, uint32_t token) {
  if (r->npending == r->pending_room) {
    size_t room = r->pending_room ? r->pending_room * 2 : 64;
    struct pending *grown = realloc(r->pending, room * sizeof(*grown));
    if (!grown) return -1;
    r->pending = grown;
    r->pending_room = room;
  }
  r->pending[r->npending++] = (struct pending){unique, token};
  return 0;
}

/* On this thread: hands the requests the ring's threads have left to JavaScript, in order. */
static void on_handed(uv_async_t *handle) {
  struct reader *r = handle->data;
  pthread_mutex_lock(&r->inbox_lock);
  struct ring_request *q = r->inbox;
  r->inbox = r->inbox_tail = NULL;
  int failure = r->ring_failure, failed_queue = r->failed_queue;
  pthread_mutex_unlock(&r->inbox_lock);
  if (failure) end_from(r, failure, failed_queue);
  while (q) {
    struct ring_request *next = q->next;
    if (!r->ended && r->uring) {
      const struct in_header *h = (const struct in_header *)q->bytes;
      unsigned char out[sizeof(struct out_header)];
      if (q->length > r->size || remember_pending(r, h->unique, q->token) != 0) {
        ring_reply(r->uring, q->token, out, header_reply(out, h->unique, -EIO, 0));
      } else {
        memcpy(r->buf, q->bytes, q->length);
        to_javascript(r, q->length);
      }
    }
    free(q);
    q = next;
  }
}

/*
 * prepareRing(reader) => queues: sets up FUSE over io_uring (fuse-ring.c)
 * before FUSE_INIT is answered with it; throws, saying why, where it cannot.
 */
static napi_value prepare_ring(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct reader *r = reader_args(env, info, 1, argv);
  if (!r) return NULL;
  if (r->ended || r->uring) {
    napi_throw_error(env, NULL, r->ended ? "the reader has ended" : "the ring is set up already");
    return NULL;
  }
  uv_loop_t *loop;
  if (!r->has_async) {
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || uv_async_init(loop, &r->handed, on_handed) != 0) {
      napi_throw_error(env, NULL, "cannot wake the event loop from another thread");
      return NULL;
    }
    r->handed.data = r;
    r->has_async = 1;
    r->holders++;
  }
  const char *why = "unknown";
  /* Room for a request's largest payload: a WRITE of the size the reader's buffer takes. */
  r->uring = ring_create(r->fd, r->size, ring_answer, ring_forward, ring_failed, r, &why);
  if (!r->uring) {
    napi_throw_error(env, NULL, why);
    return NULL;
  }
  napi_value queues;
  CHECK(napi_create_int32(env, ring_queues(r->uring), &queues));
  return queues;
}

/* startRing(reader): FUSE_INIT has been answered with io_uring: the ring's threads register with the kernel. */
static napi_value start_ring(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct reader *r = reader_args(env, info, 1, argv);
  if (!r) return NULL;
  if (r->uring) ring_start(r->uring);
  return NULL;
}

/*
 * send(reader, message) => errno (0: sent): a reply or notification, to the
 * ring entry holding its request where it came that way, else to /dev/fuse.
 */
static napi_value send_message(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct reader *r = reader_args(env, info, 2, argv);
  if (!r) return NULL;
  void *data;
  size_t length;
  CHECK(napi_get_buffer_info(env, argv[1], &data, &length));
  int error = 0;
  int routed = 0;
  if (r->npending && length >= sizeof(struct out_header)) {
    const struct out_header *h = data;
    for (size_t i = 0; i < r->npending; i++) {
      if (r->pending[i].unique != h->unique) continue;
      uint32_t token = r->pending[i].token;
      r->pending[i] = r->pending[--r->npending];
      error = r->uring ? ring_reply(r->uring, token, data, length) : ENODEV;
      routed = 1;
      break;
    }
  }
  if (!routed) error = reply(r, data, length);
  napi_value result;
  CHECK(napi_create_int32(env, error, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"start", NULL, start, NULL, NULL, NULL, napi_default, NULL},
      {"allow", NULL, allow, NULL, NULL, NULL, napi_default, NULL},
      {"answered", NULL, answered, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_reader, NULL, NULL, NULL, napi_default, NULL},
      {"prepareRing", NULL, prepare_ring, NULL, NULL, NULL, napi_default, NULL},
      {"startRing", NULL, start_ring, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, send_message, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  define_store_writer(env, exports);
  napi_value handle_base;
  napi_create_double(env, (double)FAST_HANDLE_BASE, &handle_base);
  napi_set_named_property(env, exports, "handleBase", handle_base);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
