/*
 * FUSE requests over io_uring (Linux 6.14 and later, where the fuse module's
 * enable_uring parameter is Y): the kernel queues each request on the queue
 * of the CPU its program runs on, and hands it to the thread waiting on that
 * queue's ring. Each queue here has a thread of its own, kept on its CPU,
 * which answers what it can by itself (fuse-fast.c decides) and hands the
 * rest on, to be answered from JavaScript through ring_reply().
 *
 * Why: a program waiting in open() on a read-write mount sleeps until the
 * answer wakes it. Read from /dev/fuse, the request wakes the daemon on
 * another CPU and the answer wakes the program back: two wake-ups across
 * CPUs per file. Here both happen on the program's CPU, one thread handing
 * the turn to the other: a C daemon answering a walk's opens this way took
 * about 40% of the time it took reading /dev/fuse.
 *
 * The kernel keeps FORGET, INTERRUPT and notifications on /dev/fuse, which
 * fuse-fast.c goes on reading.
 */
#define _GNU_SOURCE
#include "fuse-ring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* From the kernel's uapi fuse.h (7.42); the build host's copy may be older. */
#define URING_CMD_REGISTER 1
#define URING_CMD_COMMIT_AND_FETCH 2
#define IN_HEADER_SIZE 40
#define OUT_HEADER_SIZE 16
#define OP_HEADER_ROOM 128
/* The max_pages zkfs answers FUSE_INIT with (init.ts: MAX_WRITE / 4096). */
#define MAX_PAGES 32

struct ent_in_out {
  uint64_t flags;
  uint64_t commit_id;
  uint32_t payload_sz;
  uint32_t padding;
  uint64_t reserved;
};
struct req_header {
  unsigned char in_out[128]; /* fuse_in_header in, fuse_out_header back */
  unsigned char op_in[OP_HEADER_ROOM];
  struct ent_in_out ent;
};
struct cmd_req {
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};

/*
 * Entries per queue: requests of one CPU in the daemon's hands at once. A
 * request waiting for ZooKeeper holds its entry; beyond this many, the
 * kernel keeps the next ones until an entry comes back.
 */
#define DEPTH 64
#define SQ_ENTRIES 256
#define WAKE_TAG UINT64_MAX
/* Requests no bigger than this are laid out on the stack to be answered here. */
#define SMALL_REQUEST 1024

struct entry {
  struct req_header *header;
  unsigned char *payload;
  struct iovec iov[2];
};

/*
 * The queue threads run at idle priority (SCHED_IDLE) while that costs
 * nothing. Why: when a thread answers, the kernel wakes the program that
 * asked, and puts it on an idle CPU if the one it ran on is busy, which it
 * is, with the thread answering. On the 2-CPU test VM that sent most
 * programs to the other CPU, and each answer across CPUs: a warm walk took
 * about 400 ms. A CPU running only idle-priority threads counts as idle, so
 * the program stays on its CPU, where the next request finds this thread:
 * about 270 ms. But a thread at idle priority waits behind any busy program
 * on its CPU. So each thread reads how long it waited for its CPU
 * (/proc/thread-self/schedstat) every CHECK_NS: more than WAIT_LIMIT_NS per
 * run on average, and it runs at normal priority for NORMAL_FOR_NS before
 * trying idle again.
 */
#define CHECK_NS 50000000ULL
#define WAIT_LIMIT_NS 100000ULL
#define NORMAL_FOR_NS 1000000000ULL

struct priority {
  int schedstat; /* /proc/thread-self/schedstat, or -1 */
  int idle;      /* running at SCHED_IDLE now */
  uint64_t checked_at, normal_until;
  uint64_t waited, runs; /* schedstat's run_delay and pcount when last checked */
};

struct queue {
  struct fuse_ring *ring;
  int qid;
  struct priority priority;
  uint64_t raised; /* times raised to normal priority, atomic */
  int fd;
  int wake_fd;
  uint64_t wake_value;
  unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
  struct io_uring_cqe *cqes;
  unsigned char *sqes;
  void *rings;
  size_t rings_size, sqes_size;
  unsigned to_submit;
  pthread_t thread;
  int has_thread;
  pthread_mutex_t lock;
  pthread_cond_t set_up;
  int setup_state;    /* under lock: 0 setting up, 1 ready, -1 failed (with setup_why) */
  const char *setup_why;
  int stop;           /* under lock */
  int ready[DEPTH];   /* entries whose replies ring_reply() has written, under lock */
  int nready;
  long served; /* requests that arrived on this queue, for fail_after */
  struct entry entries[DEPTH];
};

struct fuse_ring {
  int fuse_fd;
  size_t payload_size;
  int nqueues;
  struct queue *queues;
  ring_answer_fn answer;
  ring_forward_fn forward;
  ring_failed_fn failed;
  void *context;
  /*
   * For tests only (VOLKIT_FUSE_RING_FAIL_AFTER=N): a queue's io_uring_enter
   * fails with EIO once it has served N requests, as a real failure would.
   * -1: never.
   */
  long fail_after;
};

static int sys_setup(unsigned entries, struct io_uring_params *p) {
  return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned submit, unsigned wait, unsigned flags) {
  return (int)syscall(__NR_io_uring_enter, fd, submit, wait, flags, NULL, 0);
}

/* io_uring_enter for the queue's thread, or the failure a test asked for. */
static int enter(struct queue *q) {
  long after = q->ring->fail_after;
  if (after >= 0 && q->served >= after) {
    errno = EIO;
    return -1;
  }
  return sys_enter(q->fd, q->to_submit, 1, IORING_ENTER_GETEVENTS);
}

static void unmap_queue(struct queue *q) {
  if (q->sqes) munmap(q->sqes, q->sqes_size);
  if (q->rings) munmap(q->rings, q->rings_size);
  q->sqes = NULL;
  q->rings = NULL;
}

/* Creates the queue's ring, on its thread: the only one that submits to it, and runs its completions. */
static int setup_queue(struct queue *q, const char **why) {
  struct io_uring_params p;
  memset(&p, 0, sizeof(p));
  p.flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  q->fd = sys_setup(SQ_ENTRIES, &p);
  if (q->fd < 0) {
    *why = errno == EPERM ? "io_uring is not permitted (kernel.io_uring_disabled, or a seccomp filter)"
                          : "io_uring_setup failed";
    return -1;
  }
  if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
    *why = "this kernel's io_uring maps its rings separately";
    return -1;
  }
  size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  q->rings_size = sq_size > cq_size ? sq_size : cq_size;
  q->rings = mmap(NULL, q->rings_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, q->fd, IORING_OFF_SQ_RING);
  if (q->rings == MAP_FAILED) {
    q->rings = NULL;
    *why = "cannot map an io_uring";
    return -1;
  }
  q->sqes_size = p.sq_entries * 128;
  q->sqes = mmap(NULL, q->sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, q->fd, IORING_OFF_SQES);
  if (q->sqes == MAP_FAILED) {
    q->sqes = NULL;
    *why = "cannot map an io_uring";
    return -1;
  }
  unsigned char *base = q->rings;
  q->sq_tail = (unsigned *)(base + p.sq_off.tail);
  q->sq_mask = (unsigned *)(base + p.sq_off.ring_mask);
  q->sq_array = (unsigned *)(base + p.sq_off.array);
  q->cq_head = (unsigned *)(base + p.cq_off.head);
  q->cq_tail = (unsigned *)(base + p.cq_off.tail);
  q->cq_mask = (unsigned *)(base + p.cq_off.ring_mask);
  q->cqes = (struct io_uring_cqe *)(base + p.cq_off.cqes);
  for (int i = 0; i < DEPTH; i++) {
    struct entry *e = &q->entries[i];
    e->header = calloc(1, sizeof(struct req_header));
    e->payload = malloc(q->ring->payload_size);
    if (!e->header || !e->payload) {
      *why = "out of memory";
      return -1;
    }
    e->iov[0].iov_base = e->header;
    e->iov[0].iov_len = sizeof(struct req_header);
    e->iov[1].iov_base = e->payload;
    e->iov[1].iov_len = q->ring->payload_size;
  }
  return 0;
}

static struct io_uring_sqe *next_sqe(struct queue *q) {
  unsigned tail = *q->sq_tail;
  unsigned index = tail & *q->sq_mask;
  struct io_uring_sqe *sqe = (struct io_uring_sqe *)(q->sqes + (size_t)index * 128);
  memset(sqe, 0, 128);
  q->sq_array[index] = index;
  return sqe;
}

static void push_sqe(struct queue *q) {
  __atomic_store_n(q->sq_tail, *q->sq_tail + 1, __ATOMIC_RELEASE);
  q->to_submit++;
}

static void push_command(struct queue *q, uint32_t op, int index, uint64_t commit_id) {
  struct io_uring_sqe *sqe = next_sqe(q);
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = q->ring->fuse_fd;
  sqe->cmd_op = op;
  sqe->addr = (uint64_t)(uintptr_t)q->entries[index].iov;
  sqe->len = 2;
  sqe->user_data = (uint64_t)index;
  struct cmd_req *cmd = (struct cmd_req *)sqe->cmd;
  cmd->commit_id = commit_id;
  cmd->qid = (uint16_t)q->qid;
  push_sqe(q);
}

/* Waits for the next ring_reply() or stop, as a read of the eventfd that completes on the ring. */
static void push_wake_read(struct queue *q) {
  struct io_uring_sqe *sqe = next_sqe(q);
  sqe->opcode = IORING_OP_READ;
  sqe->fd = q->wake_fd;
  sqe->addr = (uint64_t)(uintptr_t)&q->wake_value;
  sqe->len = sizeof(q->wake_value);
  sqe->user_data = WAKE_TAG;
  push_sqe(q);
}

static void commit(struct queue *q, int index) {
  push_command(q, URING_CMD_COMMIT_AND_FETCH, index, q->entries[index].header->ent.commit_id);
}

/* Puts the reply in `message` (header first) into the entry; its commit sends it. */
static void fill_reply(struct queue *q, int index, const unsigned char *message, size_t length) {
  struct entry *e = &q->entries[index];
  size_t payload = length - OUT_HEADER_SIZE;
  memcpy(e->header->in_out, message, OUT_HEADER_SIZE);
  if (payload) memcpy(e->payload, message + OUT_HEADER_SIZE, payload);
  e->header->ent.payload_sz = (uint32_t)payload;
}

static void reply_error(struct queue *q, int index, uint64_t unique, int error) {
  unsigned char out[OUT_HEADER_SIZE];
  uint32_t len = OUT_HEADER_SIZE;
  int32_t err = -error;
  memcpy(out, &len, 4);
  memcpy(out + 4, &err, 4);
  memcpy(out + 8, &unique, 8);
  fill_reply(q, index, out, sizeof(out));
  commit(q, index);
}

/* Lays the request in entry `e` out into `to` as read(2) would have returned it. */
static void flatten(const struct entry *e, size_t op_len, size_t payload, unsigned char *to) {
  memcpy(to, e->header->in_out, IN_HEADER_SIZE);
  memcpy(to + IN_HEADER_SIZE, e->header->op_in, op_len);
  memcpy(to + IN_HEADER_SIZE + op_len, e->payload, payload);
}

/* A request has arrived in entry `index`: answers it here or hands it on. */
static void serve_entry(struct queue *q, int index) {
  struct entry *e = &q->entries[index];
  struct fuse_ring *ring = q->ring;
  uint32_t len;
  uint64_t unique;
  memcpy(&len, e->header->in_out, 4);
  memcpy(&unique, e->header->in_out + 8, 8);
  size_t payload = e->header->ent.payload_sz;
  if (len < IN_HEADER_SIZE + payload || len - IN_HEADER_SIZE - payload > OP_HEADER_ROOM ||
      payload > ring->payload_size) {
    reply_error(q, index, unique, EIO);
    return;
  }
  size_t op_len = len - IN_HEADER_SIZE - payload;
  /* What may be answered here is small (the answer callback decides what is); the rest is handed on. */
  if (len <= SMALL_REQUEST) {
    unsigned char small[SMALL_REQUEST], out[256];
    flatten(e, op_len, payload, small);
    size_t n = ring->answer(ring->context, small, len, out, sizeof(out));
    if (n >= OUT_HEADER_SIZE) {
      fill_reply(q, index, out, n);
      commit(q, index);
      return;
    }
  }
  struct ring_request *r = malloc(sizeof(*r) + len);
  if (!r) {
    reply_error(q, index, unique, ENOMEM);
    return;
  }
  r->next = NULL;
  r->token = ((uint32_t)q->qid << 16) | (uint32_t)index;
  r->length = len;
  flatten(e, op_len, payload, r->bytes);
  ring->forward(ring->context, r);
}

/* Takes what ring_reply() has written; 1 if told to stop. */
static int take_replies(struct queue *q) {
  int ready[DEPTH];
  pthread_mutex_lock(&q->lock);
  int stop = q->stop;
  int n = q->nready;
  memcpy(ready, q->ready, (size_t)n * sizeof(int));
  q->nready = 0;
  pthread_mutex_unlock(&q->lock);
  if (stop) return 1;
  for (int i = 0; i < n; i++) commit(q, ready[i]);
  return 0;
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static int set_idle(struct priority *p, int idle) {
  struct sched_param param = {0};
  if (sched_setscheduler(0, idle ? SCHED_IDLE : SCHED_OTHER, &param) != 0) return -1;
  p->idle = idle;
  return 0;
}

/* schedstat's run_delay (ns waited for a CPU) and pcount (runs) so far: 0, or -1 where unreadable. */
static int read_schedstat(struct priority *p, uint64_t *waited, uint64_t *runs) {
  char text[128];
  ssize_t n = pread(p->schedstat, text, sizeof(text) - 1, 0);
  if (n <= 0) return -1;
  text[n] = 0;
  unsigned long long ran, delay, count;
  if (sscanf(text, "%llu %llu %llu", &ran, &delay, &count) != 3) return -1;
  *waited = delay;
  *runs = count;
  return 0;
}

static void start_idle(struct priority *p) {
  p->schedstat = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  p->idle = 0;
  /* Without the means to see waits, stay at normal priority. */
  if (p->schedstat < 0 || read_schedstat(p, &p->waited, &p->runs) != 0) return;
  p->checked_at = now_ns();
  set_idle(p, 1);
}

/* After waking: every CHECK_NS, whether the thread waited too long for its CPU, and its priority from now. */
static void check_priority(struct queue *q) {
  struct priority *p = &q->priority;
  if (p->schedstat < 0) return;
  uint64_t now = now_ns();
  if (now - p->checked_at < CHECK_NS) return;
  uint64_t waited, runs;
  if (read_schedstat(p, &waited, &runs) != 0) return;
  uint64_t dw = waited - p->waited, dr = runs - p->runs;
  p->waited = waited;
  p->runs = runs;
  p->checked_at = now;
  if (p->idle && dr > 0 && dw / dr > WAIT_LIMIT_NS) {
    if (set_idle(p, 0) == 0) {
      p->normal_until = now + NORMAL_FOR_NS;
      __atomic_fetch_add(&q->raised, 1, __ATOMIC_RELAXED);
    }
  } else if (!p->idle && now >= p->normal_until) {
    set_idle(p, 1);
  }
}

static void *queue_main(void *arg) {
  struct queue *q = arg;
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(q->qid, &cpus);
  /* Where the CPU is offline or out of this process's set, the queue is served from wherever. */
  pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
  /* So that `top -H` and `ps -L` tell the queues from Node's own threads. */
  char name[16];
  snprintf(name, sizeof(name), "zkfs-uring-%d", q->qid);
  pthread_setname_np(pthread_self(), name);
  const char *why = NULL;
  int failed = setup_queue(q, &why);
  pthread_mutex_lock(&q->lock);
  q->setup_state = failed ? -1 : 1;
  q->setup_why = why;
  pthread_cond_signal(&q->set_up);
  pthread_mutex_unlock(&q->lock);
  if (failed) return NULL;
  uint64_t value;
  while (read(q->wake_fd, &value, sizeof(value)) < 0 && errno == EINTR) {
  }
  pthread_mutex_lock(&q->lock);
  int stop = q->stop;
  pthread_mutex_unlock(&q->lock);
  if (stop) return NULL;
  for (int i = 0; i < DEPTH; i++) push_command(q, URING_CMD_REGISTER, i, 0);
  push_wake_read(q);
  start_idle(&q->priority);
  for (;;) {
    int n = enter(q);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EBUSY) continue;
      /*
       * Nothing else serves this queue: the kernel keeps its CPU's requests
       * for it. The reader (fuse-fast.c) ends the connection, so that they
       * fail instead of waiting for ever.
       */
      q->ring->failed(q->ring->context, q->qid, errno);
      return NULL;
    }
    check_priority(q);
    q->to_submit = (unsigned)n >= q->to_submit ? 0 : q->to_submit - (unsigned)n;
    unsigned head = *q->cq_head;
    unsigned tail = __atomic_load_n(q->cq_tail, __ATOMIC_ACQUIRE);
    for (; head != tail; head++) {
      struct io_uring_cqe *cqe = &q->cqes[head & *q->cq_mask];
      if (cqe->user_data == WAKE_TAG) {
        if (take_replies(q)) {
          __atomic_store_n(q->cq_head, head + 1, __ATOMIC_RELEASE);
          return NULL;
        }
        push_wake_read(q);
      } else if (cqe->res < 0) {
        /*
         * ENOTCONN: unmounted or aborted (the reader of /dev/fuse sees that
         * too). A failed registration makes the kernel go back to /dev/fuse.
         */
      } else {
        q->served++;
        serve_entry(q, (int)cqe->user_data);
      }
    }
    __atomic_store_n(q->cq_head, head, __ATOMIC_RELEASE);
  }
}

static void free_queue(struct queue *q) {
  if (q->priority.schedstat >= 0) close(q->priority.schedstat);
  unmap_queue(q);
  if (q->fd >= 0) close(q->fd);
  if (q->wake_fd >= 0) close(q->wake_fd);
  for (int i = 0; i < DEPTH; i++) {
    free(q->entries[i].header);
    free(q->entries[i].payload);
  }
  pthread_mutex_destroy(&q->lock);
  pthread_cond_destroy(&q->set_up);
}

static void wake(struct queue *q) {
  uint64_t one = 1;
  while (write(q->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

void ring_destroy(struct fuse_ring *ring) {
  if (!ring) return;
  for (int i = 0; i < ring->nqueues; i++) {
    struct queue *q = &ring->queues[i];
    if (!q->has_thread) continue;
    pthread_mutex_lock(&q->lock);
    q->stop = 1;
    pthread_mutex_unlock(&q->lock);
    wake(q);
  }
  for (int i = 0; i < ring->nqueues; i++) {
    struct queue *q = &ring->queues[i];
    if (q->has_thread) pthread_join(q->thread, NULL);
    free_queue(q);
  }
  free(ring->queues);
  free(ring);
}

/*
 * The CPUs the kernel may ever run (num_possible_cpus(): the weight of
 * /sys/devices/system/cpu/possible, such as "0-3"): it makes a queue for
 * each, and holds every request until all of them have an entry.
 */
static long possible_cpus(void) {
  char text[256];
  int fd = open("/sys/devices/system/cpu/possible", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, text, sizeof(text) - 1);
  close(fd);
  if (n <= 0) return -1;
  text[n] = 0;
  long count = 0;
  for (char *at = text; *at && *at != '\n';) {
    char *end;
    long first = strtol(at, &end, 10), last = first;
    if (end == at) return -1;
    if (*end == '-') {
      at = end + 1;
      last = strtol(at, &end, 10);
      if (end == at || last < first) return -1;
    }
    count += last - first + 1;
    at = *end == ',' ? end + 1 : end;
  }
  return count;
}

struct fuse_ring *ring_create(int fuse_fd, size_t payload_size, ring_answer_fn answer, ring_forward_fn forward,
                              ring_failed_fn failed, void *context, const char **why) {
  /*
   * The kernel refuses entries with less room than the largest request or
   * reply it may pass: max_write, or max_pages (32, init.ts) pages, which is
   * more where pages are bigger than 4 KiB.
   */
  long page = sysconf(_SC_PAGESIZE);
  if (page > 0 && payload_size < (size_t)page * MAX_PAGES) payload_size = (size_t)page * MAX_PAGES;
  long cpus = possible_cpus();
  if (cpus < 1 || cpus > 4096) {
    *why = "cannot count this machine's CPUs";
    return NULL;
  }
  struct fuse_ring *ring = calloc(1, sizeof(*ring));
  struct queue *queues = calloc((size_t)cpus, sizeof(*queues));
  if (!ring || !queues) {
    free(ring);
    free(queues);
    *why = "out of memory";
    return NULL;
  }
  ring->fuse_fd = fuse_fd;
  ring->payload_size = payload_size;
  ring->queues = queues;
  ring->answer = answer;
  ring->forward = forward;
  ring->failed = failed;
  ring->context = context;
  const char *fail_after = getenv("VOLKIT_FUSE_RING_FAIL_AFTER");
  ring->fail_after = fail_after && *fail_after ? strtol(fail_after, NULL, 10) : -1;
  for (int i = 0; i < cpus; i++) {
    struct queue *q = &queues[i];
    q->ring = ring;
    q->qid = i;
    q->fd = -1;
    q->priority.schedstat = -1;
    q->wake_fd = eventfd(0, EFD_CLOEXEC);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->set_up, NULL);
    ring->nqueues = i + 1;
    if (q->wake_fd < 0) {
      *why = "cannot create an eventfd";
      ring_destroy(ring);
      return NULL;
    }
    if (pthread_create(&q->thread, NULL, queue_main, q) != 0) {
      *why = "cannot start a thread";
      ring_destroy(ring);
      return NULL;
    }
    q->has_thread = 1;
  }
  /* Every queue must be able to take requests before FUSE_INIT's reply offers them. */
  for (int i = 0; i < ring->nqueues; i++) {
    struct queue *q = &queues[i];
    pthread_mutex_lock(&q->lock);
    while (q->setup_state == 0) pthread_cond_wait(&q->set_up, &q->lock);
    int state = q->setup_state;
    const char *failure = q->setup_why;
    pthread_mutex_unlock(&q->lock);
    if (state < 0) {
      *why = failure;
      ring_destroy(ring);
      return NULL;
    }
  }
  return ring;
}

void ring_start(struct fuse_ring *ring) {
  for (int i = 0; i < ring->nqueues; i++) wake(&ring->queues[i]);
}

int ring_queues(const struct fuse_ring *ring) {
  return ring->nqueues;
}

uint64_t ring_raised(const struct fuse_ring *ring) {
  uint64_t raised = 0;
  for (int i = 0; i < ring->nqueues; i++) raised += __atomic_load_n(&ring->queues[i].raised, __ATOMIC_RELAXED);
  return raised;
}

int ring_reply(struct fuse_ring *ring, uint32_t token, const unsigned char *message, size_t length) {
  uint32_t qid = token >> 16, index = token & 0xffff;
  if (qid >= (uint32_t)ring->nqueues || index >= DEPTH || length < OUT_HEADER_SIZE ||
      length - OUT_HEADER_SIZE > ring->payload_size)
    return EINVAL;
  struct queue *q = &ring->queues[qid];
  /* The entry is ours until committed: its thread does not touch it meanwhile. */
  fill_reply(q, (int)index, message, length);
  pthread_mutex_lock(&q->lock);
  q->ready[q->nready++] = (int)index;
  pthread_mutex_unlock(&q->lock);
  wake(q);
  return 0;
}
