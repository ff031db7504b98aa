/* proto/proto_internal.h — private to the proto library; not for use outside
 * proto/. */
#ifndef VOW_PROTO_INTERNAL_H
#define VOW_PROTO_INTERNAL_H

#include "proto.h"

#if defined(__GNUC__) || defined(__clang__)
#define VOWP__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define VOWP__PRINTF(a, b)
#endif

/* Fills err and returns its code, for `return vowp__fail(...)`. */
vowp_err vowp__fail(vowp_error* err, vowp_err code, uint64_t offset,
                    const char* fmt, ...) VOWP__PRINTF(4, 5);

/* What one msgpack header says. */
typedef struct vowp__head {
  size_t size;    /* header bytes, including any length field */
  uint64_t body;  /* payload bytes that follow (str, bin, ext) */
  uint64_t items; /* elements that follow (array: n; map: 2n) */
  bool container;
  const char* what; /* its family (int, str, array...), for messages */
} vowp__head;

/* Reads the header at p, with `left` bytes available. Returns false when
 * the header itself does not fit or the byte is reserved; h->what says
 * which. */
bool vowp__read_head(const unsigned char* p, size_t left, vowp__head* h);

/* A read position over bytes the pre-scan has validated, so reads cannot
 * run past the end; they only check that each field has the type the
 * message needs. */
typedef struct vowp__cursor {
  const unsigned char* p;
  const unsigned char* start;
  const unsigned char* end; /* the message's end; NULL: not known */
  uint64_t base;            /* stream offset of start */
  const char* msg;          /* message type name, for errors */
  vowp_error* err;
} vowp__cursor;

/* Each returns VOWP_OK or fills the error naming `field`. */
vowp_err vowp__read_array(vowp__cursor* c, const char* field, size_t* n);
vowp_err vowp__read_uint(vowp__cursor* c, const char* field, uint64_t* out);
vowp_err vowp__read_int(vowp__cursor* c, const char* field, int64_t* out);
vowp_err vowp__read_double(vowp__cursor* c, const char* field, double* out);
vowp_err vowp__read_str(vowp__cursor* c, const char* field, vowp_slice* out);
/* A str, or nil (then *present is false). */
vowp_err vowp__read_opt_str(vowp__cursor* c, const char* field, vowp_slice* out,
                            bool* present);
/* Any one object, as its encoded bytes. */
void vowp__read_any(vowp__cursor* c, vowp_slice* out);

/* Decodes a pre-scanned payload into msg. */
vowp_err vowp__decode(const char* payload, size_t len, uint64_t base,
                      vowp_msg* msg, vowp_error* err);

#endif
