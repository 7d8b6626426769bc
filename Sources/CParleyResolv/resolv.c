#include "CParleyResolv.h"
#include <netinet/in.h>
#include <arpa/nameser.h>
#include <resolv.h>
#include <netdb.h>

int parley_res_query(const char *name, int type, unsigned char *answer, int answer_length) {
    // res_query keeps its state per thread (glibc's _res is thread-local).
    return res_query(name, ns_c_in, type, answer, answer_length);
}

int parley_h_errno(void) { return h_errno; }
