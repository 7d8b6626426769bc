#ifndef CPARLEY_RESOLV_H
#define CPARLEY_RESOLV_H

/// One DNS query through the system's stub resolver (res_query: /etc/resolv.conf's
/// servers, search list, timeouts and retries). Writes the raw answer message to `answer`;
/// returns its length, or -1 with h_errno set. Blocks: call it off the schedulers.
int parley_res_query(const char *name, int type, unsigned char *answer, int answer_length);

/// h_errno after a failed parley_res_query on this thread (1: not found, 2: try again,
/// 3: no recovery, 4: no data).
int parley_h_errno(void);

#endif
