/*
 * Reads FUSE requests on Node's own event loop and answers the two that a
 * program reading files sends for every file, without entering
 * JavaScript: OPEN for reading of a node the daemon has said may be opened
 * this way, and RELEASE of a handle given out here. Every other request
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
 */
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define FUSE_OPEN 14
#define FUSE_RELEASE 18
#define FAST_HANDLE_BASE (1ULL << 52)
#define O_ACCMODE_BITS 3

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
  unsigned char *buf;
  size_t size;
  napi_ref buffer;      /* the Buffer over buf handed to JavaScript */
  napi_ref on_request;  /* (buffer, length) => void */
  napi_ref on_end;      /* (errno) => void */
  napi_ref resource;    /* the async resource callbacks are made on behalf of */
  napi_ref counts_ref;  /* the Float64Array holding the change count (a double never wraps round) */
  const double *count;  /* its cell 0 */
  napi_async_context context;
  struct slot *slots;
  size_t capacity;      /* a power of two */
  size_t used;
  uint64_t next_handle;
  double opens;         /* answered here */
  double releases;
  int ended;
  /* Freed when both JavaScript has dropped it and its poll handle has closed. */
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

static void reply(struct reader *r, const void *message, size_t length) {
  /* ENOENT: the request was interrupted meanwhile; ENODEV: unmounted. Either way nothing more to do. */
  ssize_t written;
  do {
    written = write(r->fd, message, length);
  } while (written < 0 && errno == EINTR);
}

/* Answers the request in buf here if it may be; 1 if answered. */
static int answer_fast(struct reader *r, size_t length) {
  const struct in_header *h = (const struct in_header *)r->buf;
  if (length < sizeof(*h)) return 0;
  if (h->opcode == FUSE_OPEN && length >= sizeof(*h) + sizeof(struct open_in)) {
    const struct open_in *in = (const struct open_in *)(r->buf + sizeof(*h));
    if ((in->flags & O_ACCMODE_BITS) != 0) return 0;
    struct slot *s = find_slot(r, h->nodeid);
    if (s->node != h->nodeid || s->count != *r->count) return 0;
    struct {
      struct out_header h;
      struct open_out o;
    } out;
    memset(&out, 0, sizeof(out));
    out.h.len = sizeof(out);
    out.h.unique = h->unique;
    out.o.fh = FAST_HANDLE_BASE + r->next_handle++;
    out.o.open_flags = s->flags;
    reply(r, &out, sizeof(out));
    r->opens++;
    return 1;
  }
  if (h->opcode == FUSE_RELEASE && length >= sizeof(*h) + sizeof(struct release_in)) {
    const struct release_in *in = (const struct release_in *)(r->buf + sizeof(*h));
    if (in->fh < FAST_HANDLE_BASE) return 0;
    struct out_header out = {sizeof(out), 0, h->unique};
    reply(r, &out, sizeof(out));
    r->releases++;
    return 1;
  }
  return 0;
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

static void stop(struct reader *r) {
  if (r->polling) {
    uv_poll_stop(&r->poll);
    r->polling = 0;
  }
}

static void end(struct reader *r, int error) {
  if (r->ended) return;
  r->ended = 1;
  stop(r);
  napi_handle_scope scope;
  napi_open_handle_scope(r->env, &scope);
  napi_value arg;
  napi_create_int32(r->env, error, &arg);
  call_js(r, r->on_end, 1, &arg);
  napi_close_handle_scope(r->env, scope);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  struct reader *r = handle->data;
  (void)events;
  if (status < 0) {
    end(r, -status);
    return;
  }
  ssize_t n = read(r->fd, r->buf, r->size);
  if (n < 0) {
    /* ENOENT: a request interrupted before we read it; EAGAIN: woken with nothing left to read. */
    if (errno == EAGAIN || errno == EINTR || errno == ENOENT) return;
    end(r, errno);
    return;
  }
  if (n == 0) {
    end(r, ENODEV);
    return;
  }
  if (answer_fast(r, (size_t)n)) return;
  napi_handle_scope scope;
  napi_open_handle_scope(r->env, &scope);
  napi_value argv[2];
  napi_get_reference_value(r->env, r->buffer, &argv[0]);
  napi_create_uint32(r->env, (uint32_t)n, &argv[1]);
  call_js(r, r->on_request, 2, argv);
  napi_close_handle_scope(r->env, scope);
}

static void release_reader(struct reader *r) {
  if (--r->holders > 0) return;
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
  napi_delete_reference(r->env, r->counts_ref);
  napi_delete_reference(r->env, r->resource);
  napi_async_destroy(r->env, r->context);
  release_reader(r);
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

/* start(fd, bufferSize, counts: Float64Array, onRequest, onEnd) => reader */
static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) {
    napi_throw_type_error(env, NULL, "fuse-fast: start(fd, bufferSize, counts, onRequest, onEnd)");
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
  if (type != napi_float64_array || cells < 1) {
    napi_throw_type_error(env, NULL, "fuse-fast: counts must be a Float64Array");
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
  r->count = data;
  r->capacity = 1024;
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
  napi_value buffer, name, wrapped, resource;
  CHECK(napi_create_external_buffer(env, size, r->buf, free_buffer, NULL, &buffer));
  CHECK(napi_create_reference(env, buffer, 1, &r->buffer));
  CHECK(napi_create_reference(env, argv[2], 1, &r->counts_ref));
  CHECK(napi_create_reference(env, argv[3], 1, &r->on_request));
  CHECK(napi_create_reference(env, argv[4], 1, &r->on_end));
  CHECK(napi_create_object(env, &resource));
  CHECK(napi_create_reference(env, resource, 1, &r->resource));
  CHECK(napi_create_string_utf8(env, "FuseRequests", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, resource, name, &r->context));
  r->poll.data = r;
  r->holders = 2;
  if (uv_poll_start(&r->poll, UV_READABLE, on_readable) != 0) {
    fcntl(fd, F_SETFL, flags);
    r->ended = 1;
    r->holders = 1;
    uv_close((uv_handle_t *)&r->poll, on_poll_closed);
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
  if ((r->used + 1) * 2 > r->capacity && grow(r) != 0) return NULL;
  struct slot *s = find_slot(r, (uint64_t)node);
  if (s->node == 0) r->used++;
  s->node = (uint64_t)node;
  s->count = count;
  s->flags = flags;
  return NULL;
}

/* answered(reader) => [opens, releases] answered here so far */
static napi_value answered(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct reader *r = reader_args(env, info, 1, argv);
  if (!r) return NULL;
  napi_value result, opens, releases;
  CHECK(napi_create_array_with_length(env, 2, &result));
  CHECK(napi_create_double(env, r->opens, &opens));
  CHECK(napi_create_double(env, r->releases, &releases));
  CHECK(napi_set_element(env, result, 0, opens));
  CHECK(napi_set_element(env, result, 1, releases));
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
    uv_close((uv_handle_t *)&r->poll, on_poll_closed);
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"start", NULL, start, NULL, NULL, NULL, napi_default, NULL},
      {"allow", NULL, allow, NULL, NULL, NULL, napi_default, NULL},
      {"answered", NULL, answered, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_reader, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  napi_value handle_base;
  napi_create_double(env, (double)FAST_HANDLE_BASE, &handle_base);
  napi_set_named_property(env, exports, "handleBase", handle_base);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
