// Package registry is how a process using smc shows its connections and counters to
// `smc ss` and `smc stats`: a small shared-memory file per process that the process
// writes and other processes read, with nothing to clean up and no daemon.
//
// # The file
//
// Each process creates one memfd named "smc-registry" on first use of the library
// and keeps it open (close-on-exec) and mapped for its life. A reader finds it by
// the name of the link /proc/PID/fd/N ("/memfd:smc-registry (deleted)") and opens it
// through that link. Opening another process's file descriptor through /proc needs
// the right to read that process (ptrace's "read" mode: the same user, or root), so
// root sees every process and a user sees only its own, as with ss -p. When the
// process exits the memfd goes with it.
//
// The file is HeaderSize bytes of header followed by records of RecordSize bytes:
//
//	0     [8]byte  magic "smcreg\x00\x01"
//	8     u32      header size, u32 record size
//	16    u32      records in use: a reader looks at records below it (atomic)
//	20    u32      records the file holds now (grows; atomic)
//	24    u64      instance: a random number, so that a baseline taken by
//	               smc stats --clear is not applied to another process with the same PID
//	32    u64      start time, unix nanoseconds
//	40    u32      ID of the process's signalling socket-storage map, 0 if none
//	44    u32      status sequence (a sequence lock, as for records)
//	48    [208]    status: what the process's signalling is, text, NUL-padded
//	256   counters, 8 bytes each, in cache lines grouped by the path that writes them
//	1024  reason table: ReasonSlots entries of {u64 key, u64 count}
//	4096  records
//
// Words are in host byte order: writer and readers are on one host.
//
// # Counters
//
// Counters are atomics in the mapping, so they cost what an atomic in the Go heap
// costs: one atomic add per counted event. Each counter is written on one path only,
// and counters of different paths sit on different cache lines. Reasons (fallbacks
// and declines by code) are counted in a small open-addressing table whose keys are
// claimed with compare-and-swap; a table that is full counts into an overflow entry
// (code [Other]). Nothing is ever reset: a reader that wants counts since some time
// keeps a baseline, as nstat does.
//
// # Records
//
// A record describes one listener or connection of the process. It is written when
// the connection is set up and when its handshake ends, and freed when it is closed;
// nothing on the data path writes it. Records are guarded by a sequence lock: the
// writer makes the sequence odd, writes, and makes it even again, and a reader keeps
// a copy only when it read the same even sequence before and after. The byte counters
// of a shared-memory connection are not copied into the record: the record holds the
// addresses of the four cursor words of its two rings in the process's memory, which
// a reader with the right to read that memory (process_vm_readv: the same user without
// Yama restrictions, or root) reads itself, and checks the record's sequence again
// afterwards. The process frees the record before it unmaps the rings. Freeing a
// record stores only its kind (free), which readers skip; its other words stay until
// the record is used again, when every word is written.
//
// # Trust
//
// A reader treats every file it reads as hostile: any process can create a memfd with
// this name. Every length, count and offset is checked against the file's size before
// use; a file that fails is skipped with an error. Nothing in it is ever used as an
// address in the reader's own memory.
package registry
