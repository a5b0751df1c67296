/*
 * The bench's tree served by the smallest FUSE daemon that can serve it: C,
 * one thread, blocking read() and write() on /dev/fuse, everything answered
 * from memory. Its walk is what the kernel's FUSE round trips cost on this
 * machine with no JavaScript, no cache and no ZooKeeper: the limit for any
 * FUSE filesystem here, as the tmpfs walk is the limit for any filesystem.
 *
 * usage: c-stub MOUNTPOINT SOURCE [no-open]
 * SOURCE is a directory whose tree (directories and regular files) is read
 * into memory at start. By default it answers as a read-write zkfs mount
 * answers a reader: OPEN with KEEP_CACHE and NOFLUSH, so each file opened
 * costs one round trip and its close none. With `no-open` it answers OPEN
 * and FLUSH with ENOSYS, as a read-only zkfs mount does, after which the
 * kernel opens and closes files without asking. Prints "ready" once mounted
 * and exits when unmounted.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
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
static int no_open;

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

static void init_reply(int fd, const struct fuse_in_header *h, const struct fuse_init_in *in) {
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
  r.o.max_background = 64;
  r.o.congestion_threshold = 48;
  r.o.max_write = 128 * 1024;
  r.o.time_gran = 1;
  r.o.max_pages = 32;
  if (write(fd, &r, sizeof(r)) < 0) perror("init reply");
}

int main(int argc, char **argv) {
  if (argc < 3 || (argc > 3 && strcmp(argv[3], "no-open") != 0)) {
    fprintf(stderr, "usage: c-stub MOUNTPOINT SOURCE [no-open]\n");
    return 2;
  }
  no_open = argc > 3;
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
  printf("ready\n");
  fflush(stdout);
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
      init_reply(fd, h, (const struct fuse_init_in *)arg);
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
