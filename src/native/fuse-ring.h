/* FUSE requests over io_uring: one queue per CPU, each served by a thread of its own (fuse-ring.c). */
#ifndef ZKFS_FUSE_RING_H
#define ZKFS_FUSE_RING_H
#include <stddef.h>
#include <stdint.h>

struct fuse_ring;

/* A request handed on from a queue thread: the request as read(2) would have returned it. */
struct ring_request {
  struct ring_request *next;
  uint32_t token; /* which entry holds it: give it back with the reply */
  size_t length;
  unsigned char bytes[];
};

/*
 * Called on a queue thread with each request of up to 1 KiB (larger ones
 * are always handed on), laid out as read(2) would return it: writes a whole
 * reply (header first) into `out` and returns its length, or returns 0 to
 * hand the request on.
 */
typedef size_t (*ring_answer_fn)(void *context, const unsigned char *request, size_t length, unsigned char *out,
                                 size_t room);
/* Called on a queue thread with a request to hand on; the callee owns it (free() it). */
typedef void (*ring_forward_fn)(void *context, struct ring_request *request);
/*
 * Called on a queue thread whose ring failed (io_uring_enter's errno): the
 * thread has ended, and requests from programs on its CPU will wait until
 * the connection ends. Called at most once per queue.
 */
typedef void (*ring_failed_fn)(void *context, int qid, int error);

/*
 * Sets up a ring for every CPU the kernel may run programs on, each with a
 * thread waiting to register its entries: NULL (with *why set) where the
 * kernel or this process does not allow it. Call before answering FUSE_INIT
 * with FUSE_OVER_IO_URING, as the kernel holds every request from then
 * until each queue has an entry.
 */
struct fuse_ring *ring_create(int fuse_fd, size_t payload_size, ring_answer_fn answer, ring_forward_fn forward,
                              ring_failed_fn failed, void *context, const char **why);
/* Has the threads register their entries: call just after the FUSE_INIT reply. */
void ring_start(struct fuse_ring *ring);
/* The number of queues. */
int ring_queues(const struct fuse_ring *ring);
/* Times a queue's thread went from idle to normal priority, having waited for its CPU (fuse-ring.c). */
uint64_t ring_raised(const struct fuse_ring *ring);
/* Sends the reply (header first) to the request behind `token`: 0, or an errno. From one thread at a time. */
int ring_reply(struct fuse_ring *ring, uint32_t token, const unsigned char *message, size_t length);
/* Stops the threads and closes the rings: before the FUSE descriptor is closed. */
void ring_destroy(struct fuse_ring *ring);

#endif
