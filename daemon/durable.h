/* What the daemon's state files share to be on disk before it depends on
 * them. */
#pragma once

/* Syncs the directory of path, so that a new name in it (a file created or
 * renamed there) survives a crash. Returns 0 or -errno; a file system that
 * cannot sync a directory, and need not, is 0. */
int durable_sync_dir(const char *path);
