/**
 * Imported first by each command-line entry point, before anything can use
 * libuv's thread pool (which reads its size once, on first use): a zkfs
 * mount keeps reads waiting on /dev/fuse there and writes kernel
 * notifications that may wait for a lock, and the default of four threads
 * would leave nothing for the file system calls that answer requests.
 */
process.env.UV_THREADPOOL_SIZE ??= '16';
