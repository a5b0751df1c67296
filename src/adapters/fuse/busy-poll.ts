/**
 * Keeps the event loop polling, instead of sleeping, for a short window
 * after the daemon answers a request: a program walking the mount sends its
 * next request within microseconds of getting the answer, and a daemon
 * asleep in epoll_wait must first be woken for it. That wake-up (an
 * inter-processor interrupt and a scheduler switch, and on a virtual machine
 * an exit to the hypervisor) measured as about a third of a cached request's
 * wall time.
 *
 * The window opens on answers, not on arrivals: a request that waits for
 * ZooKeeper would otherwise spin through the server's reply time and take a
 * CPU the server and the program need. Polling is an immediate callback per
 * turn of the loop, which makes libuv poll with a zero timeout; it stops by
 * itself once the window passes with no answer sent, so an idle mount costs
 * nothing.
 */

/** Returns the function to call after each answer; a window of 0 makes it do nothing. */
export function busyPoller(windowUs: number): () => void {
  if (windowUs <= 0) return () => {};
  const windowMs = windowUs / 1000;
  let last = 0;
  let polling = false;
  const poll = () => {
    if (performance.now() - last < windowMs) setImmediate(poll);
    else polling = false;
  };
  return () => {
    last = performance.now();
    if (polling) return;
    polling = true;
    setImmediate(poll);
  };
}
