/* Batched writes of notifications to /dev/fuse from a thread of their own (store-writer.c). */
#ifndef ZKFS_STORE_WRITER_H
#define ZKFS_STORE_WRITER_H
#include <node_api.h>

/* Adds storeWriter, writeBatch and closeWriter to the module's exports. */
napi_status define_store_writer(napi_env env, napi_value exports);

#endif
