/*
 * The bench's tree served by the smallest FUSE daemon that can serve it: C,
 * one thread, blocking read() and write() on /dev/fuse, everything answered
 * from memory. Its walk is what the kernel's FUSE round trips cost on this
 * machine with no JavaScript, no cache and no ZooKeeper: the limit for any
 * FUSE filesystem here, as the tmpfs walk is the limit for any filesystem.
 *
 * usage: c-stub MOUNTPOINT SOURCE [no-open | io-uring]
 * SOURCE is a directory whose tree (directories and regular files) is read
 * into memory at start. By default it answers as a read-write zkfs mount
 * answers a reader: OPEN with KEEP_CACHE and NOFLUSH, so each file opened
 * costs one round trip and its close none. With `no-open` it answers OPEN
 * and FLUSH with ENOSYS, as a read-only zkfs mount does, after which the
 * kernel opens and closes files without asking. With `io-uring` it answers
 * as by default, but takes the requests over io_uring where the kernel
 * offers it (as zkfs does, src/native/fuse-ring.c): a thread per CPU, kept
 * on it at idle priority, waits on a ring of its own; else it exits with
 * status 3. Prints
 * "ready" once mounted and exits when unmounted.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* As zkfs answers (DEFAULT_ATTR_TIMEOUT_MS): names and attributes stay valid for 10 s. */
#define VALID_S 10
#define BUFFER (1 << 20)
#define NO_REPLY 1

struct node {
  char *name;
  uint64_t parent;
  int dir;
  char *data;
  size_t size;
  uint64_t *children;
  size_t nchildren, room;
};

static struct node *nodes; /* index = node id; 0 unused, 1 the root */
static size_t nnodes, nroom;
static int no_open, over_ring;

static uint64_t add_node(const char *name, uint64_t parent, int dir) {
  if (nnodes == nroom) {
    nroom = nroom ? nroom * 2 : 1024;
    nodes = realloc(nodes, nroom * sizeof(*nodes));
    if (!nodes) exit(1);
  }
  uint64_t id = nnodes++;
  nodes[id] = (struct node){.name = strdup(name), .parent = parent, .dir = dir};
  if (parent) {
    struct node *p = &nodes[parent];
    if (p->nchildren == p->room) {
      p->room = p->room ? p->room * 2 : 16;
      p->children = realloc(p->children, p->room * sizeof(uint64_t));
      if (!p->children) exit(1);
    }
    p->children[p->nchildren++] = id;
  }
  return id;
}

static void load(const char *path, uint64_t id) {
  DIR *d = opendir(path);
  if (!d) {
    perror(path);
    exit(1);
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char child[4096];
    snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
    struct stat st;
    if (lstat(child, &st) < 0) continue;
    if (S_ISDIR(st.st_mode)) {
      load(child, add_node(e->d_name, id, 1));
    } else if (S_ISREG(st.st_mode)) {
      uint64_t f = add_node(e->d_name, id, 0);
      struct node *n = &nodes[f];
      n->size = (size_t)st.st_size;
      n->data = malloc(n->size + 1);
      int fd = open(child, O_RDONLY);
      if (!n->data || fd < 0 || read(fd, n->data, n->size) != (ssize_t)n->size) {
        perror(child);
        exit(1);
      }
      close(fd);
    }
  }
  closedir(d);
}

static void fill_attr(struct fuse_attr *a, uint64_t id) {
  const struct node *n = &nodes[id];
  memset(a, 0, sizeof(*a));
  a->ino = id;
  a->size = n->dir ? 0 : n->size;
  a->blocks = (a->size + 511) / 512;
  a->atime = a->mtime = a->ctime = 1700000000;
  a->mode = n->dir ? (S_IFDIR | 0755) : (S_IFREG | 0644);
  a->nlink = n->dir ? 2 : 1;
  a->uid = getuid();
  a->gid = getgid();
  a->blksize = 4096;
}

static void fill_entry(struct fuse_entry_out *e, uint64_t id) {
  memset(e, 0, sizeof(*e));
  e->nodeid = id;
  e->generation = 1;
  e->entry_valid = e->attr_valid = VALID_S;
  fill_attr(&e->attr, id);
}

static int valid(uint64_t id) { return id >= 1 && id < nnodes; }

/* A listing: ".", "..", then the children; offsets count entries. */
static size_t listing(uint64_t id, uint64_t offset, size_t size, int plus, char *out) {
  const struct node *n = &nodes[id];
  size_t used = 0;
  for (uint64_t i = offset; i < n->nchildren + 2; i++) {
    uint64_t child = i == 0 ? id : i == 1 ? (n->parent ? n->parent : 1) : n->children[i - 2];
    const char *name = i == 0 ? "." : i == 1 ? ".." : nodes[child].name;
    size_t len = strlen(name);
    size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
    size_t bytes = FUSE_DIRENT_ALIGN(head + len);
    if (used + bytes > size) break;
    memset(out + used, 0, bytes);
    struct fuse_dirent *d = (struct fuse_dirent *)(out + used + (plus ? sizeof(struct fuse_entry_out) : 0));
    if (plus && i >= 2) fill_entry((struct fuse_entry_out *)(out + used), child);
    d->ino = child;
    d->off = i + 1;
    d->namelen = (uint32_t)len;
    d->type = nodes[child].dir ? DT_DIR : DT_REG;
    memcpy(d->name, name, len);
    used += bytes;
  }
  return used;
}

/* The reply's payload for one request into out: its size, an errno below 0, or NO_REPLY. */
static long answer(const struct fuse_in_header *h, const char *arg, char *out) {
  if (!valid(h->nodeid) && h->opcode != FUSE_FORGET && h->opcode != FUSE_BATCH_FORGET &&
      h->opcode != FUSE_INTERRUPT)
    return -ENOENT;
  const struct node *n = &nodes[h->nodeid];
  switch (h->opcode) {
  case FUSE_LOOKUP:
    for (size_t i = 0; i < n->nchildren; i++) {
      if (strcmp(nodes[n->children[i]].name, arg) != 0) continue;
      fill_entry((struct fuse_entry_out *)out, n->children[i]);
      return sizeof(struct fuse_entry_out);
    }
    return -ENOENT;
  case FUSE_GETATTR: {
    struct fuse_attr_out *a = (struct fuse_attr_out *)out;
    memset(a, 0, sizeof(*a));
    a->attr_valid = VALID_S;
    fill_attr(&a->attr, h->nodeid);
    return sizeof(*a);
  }
  case FUSE_OPEN:
  case FUSE_OPENDIR: {
    if (h->opcode == FUSE_OPEN && no_open) return -ENOSYS;
    struct fuse_open_out *o = (struct fuse_open_out *)out;
    memset(o, 0, sizeof(*o));
    o->fh = 1;
    o->open_flags = h->opcode == FUSE_OPEN ? FOPEN_KEEP_CACHE | FOPEN_NOFLUSH : FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR;
    return sizeof(*o);
  }
  case FUSE_READ: {
    const struct fuse_read_in *r = (const struct fuse_read_in *)arg;
    if (n->dir || r->offset >= n->size) return 0;
    size_t len = n->size - r->offset < r->size ? n->size - r->offset : r->size;
    memcpy(out, n->data + r->offset, len);
    return (long)len;
  }
  case FUSE_READDIR:
  case FUSE_READDIRPLUS: {
    const struct fuse_read_in *r = (const struct fuse_read_in *)arg;
    if (!n->dir) return -ENOTDIR;
    size_t size = r->size < BUFFER - sizeof(struct fuse_out_header) ? r->size : BUFFER - sizeof(struct fuse_out_header);
    return (long)listing(h->nodeid, r->offset, size, h->opcode == FUSE_READDIRPLUS, out);
  }
  case FUSE_FLUSH:
    return no_open ? -ENOSYS : 0;
  case FUSE_RELEASE:
  case FUSE_RELEASEDIR:
    return 0;
  case FUSE_GETXATTR:
    return -ENODATA;
  case FUSE_STATFS: {
    struct fuse_statfs_out *s = (struct fuse_statfs_out *)out;
    memset(s, 0, sizeof(*s));
    s->st.bsize = s->st.frsize = 4096;
    s->st.namelen = 255;
    return sizeof(*s);
  }
  case FUSE_FORGET:
  case FUSE_BATCH_FORGET:
  case FUSE_INTERRUPT:
    return -NO_REPLY;
  default:
    return -ENOSYS;
  }
}

/* FUSE over io_uring (the kernel's uapi fuse.h, 7.42; this host's copy may be older). */
#define OVER_IO_URING_FLAGS2 (1u << 9)
#define INIT_EXT_FLAG (1u << 30)
#define RING_REGISTER 1
#define RING_COMMIT_AND_FETCH 2
#define RING_DEPTH 4
#define RING_PAYLOAD (BUFFER + 4096)

struct ring_header {
  char in_out[128];
  char op_in[128];
  uint64_t flags, commit_id;
  uint32_t payload_sz, padding;
  uint64_t reserved;
};
struct ring_cmd {
  uint64_t flags, commit_id;
  uint16_t qid;
  uint8_t padding[6];
};
struct ring_queue {
  int qid, fd, fuse_fd;
  unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
  struct io_uring_cqe *cqes;
  char *sqes;
  unsigned to_submit;
  struct iovec iov[RING_DEPTH][2];
};

static int ring_setup(struct ring_queue *q) {
  struct io_uring_params p;
  memset(&p, 0, sizeof(p));
  p.flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  q->fd = (int)syscall(__NR_io_uring_setup, 16, &p);
  if (q->fd < 0) return -1;
  size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  char *base = mmap(NULL, sq_size > cq_size ? sq_size : cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                    q->fd, IORING_OFF_SQ_RING);
  q->sqes = mmap(NULL, p.sq_entries * 128, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, q->fd, IORING_OFF_SQES);
  if (base == MAP_FAILED || q->sqes == MAP_FAILED) return -1;
  q->sq_tail = (unsigned *)(base + p.sq_off.tail);
  q->sq_mask = (unsigned *)(base + p.sq_off.ring_mask);
  q->sq_array = (unsigned *)(base + p.sq_off.array);
  q->cq_head = (unsigned *)(base + p.cq_off.head);
  q->cq_tail = (unsigned *)(base + p.cq_off.tail);
  q->cq_mask = (unsigned *)(base + p.cq_off.ring_mask);
  q->cqes = (struct io_uring_cqe *)(base + p.cq_off.cqes);
  return 0;
}

static void ring_command(struct ring_queue *q, uint32_t op, int entry, uint64_t commit_id) {
  unsigned tail = *q->sq_tail, index = tail & *q->sq_mask;
  struct io_uring_sqe *sqe = (struct io_uring_sqe *)(q->sqes + (size_t)index * 128);
  memset(sqe, 0, 128);
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = q->fuse_fd;
  sqe->cmd_op = op;
  sqe->addr = (uint64_t)(uintptr_t)q->iov[entry];
  sqe->len = 2;
  sqe->user_data = (uint64_t)entry;
  struct ring_cmd *cmd = (struct ring_cmd *)sqe->cmd;
  cmd->commit_id = commit_id;
  cmd->qid = (uint16_t)q->qid;
  q->sq_array[index] = index;
  __atomic_store_n(q->sq_tail, tail + 1, __ATOMIC_RELEASE);
  q->to_submit++;
}

/* One CPU's queue: each request arrives in an entry, laid out as header, op header and payload. */
static void *ring_serve(void *arg) {
  struct ring_queue *q = arg;
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(q->qid, &cpus);
  pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
  /*
   * At idle priority, as zkfs's queue threads wait (fuse-ring.c): the kernel
   * then wakes a program on its own CPU, where the next answer is, rather
   * than on an idle one. (zkfs leaves idle priority behind a busy program;
   * the bench runs none.)
   */
  struct sched_param idle = {0};
  sched_setscheduler(0, SCHED_IDLE, &idle);
  if (ring_setup(q) < 0) {
    perror("io_uring_setup");
    exit(1);
  }
  for (int i = 0; i < RING_DEPTH; i++) {
    q->iov[i][0].iov_base = calloc(1, sizeof(struct ring_header));
    q->iov[i][0].iov_len = sizeof(struct ring_header);
    q->iov[i][1].iov_base = malloc(RING_PAYLOAD);
    q->iov[i][1].iov_len = RING_PAYLOAD;
    if (!q->iov[i][0].iov_base || !q->iov[i][1].iov_base) exit(1);
    ring_command(q, RING_REGISTER, i, 0);
  }
  char *out = malloc(RING_PAYLOAD);
  if (!out) exit(1);
  for (;;) {
    int n = (int)syscall(__NR_io_uring_enter, q->fd, q->to_submit, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return NULL;
    q->to_submit = 0;
    unsigned head = *q->cq_head, tail = __atomic_load_n(q->cq_tail, __ATOMIC_ACQUIRE);
    for (; head != tail; head++) {
      struct io_uring_cqe *cqe = &q->cqes[head & *q->cq_mask];
      if (cqe->res < 0) return NULL; /* ENOTCONN: unmounted */
      int i = (int)cqe->user_data;
      struct ring_header *hd = q->iov[i][0].iov_base;
      char *payload = q->iov[i][1].iov_base;
      struct fuse_in_header h;
      memcpy(&h, hd->in_out, sizeof(h));
      /* A name (LOOKUP) comes in the payload; op headers in op_in. */
      long rc = answer(&h, h.opcode == FUSE_LOOKUP ? payload : hd->op_in, out);
      struct fuse_out_header o = {(uint32_t)(sizeof(o) + (rc > 0 ? rc : 0)), rc < 0 ? (int32_t)rc : 0, h.unique};
      memcpy(hd->in_out, &o, sizeof(o));
      if (rc > 0) memcpy(payload, out, (size_t)rc);
      hd->payload_sz = rc > 0 ? (uint32_t)rc : 0;
      ring_command(q, RING_COMMIT_AND_FETCH, i, hd->commit_id);
    }
    __atomic_store_n(q->cq_head, head, __ATOMIC_RELEASE);
  }
}

static void init_reply(int fd, const struct fuse_in_header *h, const struct fuse_init_in *in, int ring) {
  struct {
    struct fuse_out_header h;
    struct fuse_init_out o;
  } r;
  memset(&r, 0, sizeof(r));
  r.h.len = sizeof(r);
  r.h.unique = h->unique;
  r.o.major = FUSE_KERNEL_VERSION;
  /* This file's structures are 7.38's; a newer kernel adapts to the older minor. */
  r.o.minor = in->minor < FUSE_KERNEL_MINOR_VERSION ? in->minor : FUSE_KERNEL_MINOR_VERSION;
  r.o.max_readahead = in->max_readahead;
  /* As zkfs asks (init.ts): listings with attributes, parallel lookups, big requests. */
  r.o.flags = in->flags & (FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS | FUSE_PARALLEL_DIROPS |
                           FUSE_MAX_PAGES | FUSE_NO_OPEN_SUPPORT | FUSE_CACHE_SYMLINKS);
  if (ring) {
    r.o.flags |= INIT_EXT_FLAG;
    r.o.flags2 = OVER_IO_URING_FLAGS2;
  }
  r.o.max_background = 64;
  r.o.congestion_threshold = 48;
  r.o.max_write = 128 * 1024;
  r.o.time_gran = 1;
  r.o.max_pages = 32;
  if (write(fd, &r, sizeof(r)) < 0) perror("init reply");
}

int main(int argc, char **argv) {
  if (argc < 3 || (argc > 3 && strcmp(argv[3], "no-open") != 0 && strcmp(argv[3], "io-uring") != 0)) {
    fprintf(stderr, "usage: c-stub MOUNTPOINT SOURCE [no-open | io-uring]\n");
    return 2;
  }
  no_open = argc > 3 && strcmp(argv[3], "no-open") == 0;
  over_ring = argc > 3 && strcmp(argv[3], "io-uring") == 0;
  add_node("", 0, 1); /* id 0: unused */
  add_node("", 0, 1); /* id 1: the root */
  load(argv[2], 1);
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    perror("/dev/fuse");
    return 1;
  }
  char options[128];
  snprintf(options, sizeof(options), "fd=%d,rootmode=40000,user_id=%u,group_id=%u", fd, getuid(), getgid());
  if (mount("volkit-bench-c-stub", argv[1], "fuse.volkitcstub", MS_NOSUID | MS_NODEV, options) < 0) {
    perror("mount");
    return 1;
  }
  char *in = malloc(BUFFER + 4096);
  char *out = malloc(BUFFER);
  if (!in || !out) return 1;
  for (;;) {
    ssize_t len = read(fd, in, BUFFER + 4096);
    if (len < 0 && (errno == EINTR || errno == ENOENT || errno == EAGAIN)) continue;
    if (len <= 0) return 0; /* ENODEV: unmounted */
    const struct fuse_in_header *h = (const struct fuse_in_header *)in;
    const char *arg = in + sizeof(*h);
    if (h->opcode == FUSE_INIT) {
      const struct fuse_init_in *init = (const struct fuse_init_in *)arg;
      int ring = over_ring && (init->flags & INIT_EXT_FLAG) && (init->flags2 & OVER_IO_URING_FLAGS2);
      if (over_ring && !ring) {
        fprintf(stderr, "c-stub: this kernel does not offer FUSE over io_uring\n");
        umount2(argv[1], MNT_DETACH);
        return 3;
      }
      init_reply(fd, h, init, ring);
      /* The kernel holds requests until every CPU's queue has entries: its threads register them now. */
      for (long cpu = 0; ring && cpu < sysconf(_SC_NPROCESSORS_CONF); cpu++) {
        struct ring_queue *q = calloc(1, sizeof(*q));
        pthread_t thread;
        if (!q) return 1;
        q->qid = (int)cpu;
        q->fuse_fd = fd;
        if (pthread_create(&thread, NULL, ring_serve, q) != 0) return 1;
      }
      printf("ready\n");
      fflush(stdout);
      continue;
    }
    if (h->opcode == FUSE_DESTROY) return 0;
    struct fuse_out_header *o = (struct fuse_out_header *)out;
    long rc = answer(h, arg, out + sizeof(*o));
    if (rc == -NO_REPLY) continue;
    o->unique = h->unique;
    o->error = rc < 0 ? (int32_t)rc : 0;
    o->len = (uint32_t)(sizeof(*o) + (rc > 0 ? rc : 0));
    if (write(fd, out, o->len) < 0 && errno != ENOENT) perror("reply");
  }
}
